"""The chunk files of a kernel store, written and read as raw bytes.

kernel_to_zarr creates its arrays so that each chunk file holds exactly the chunk's C-order
little-endian float32 values: zarr v3, a regular chunk grid, the single "bytes" codec, no
compressor (edge chunks are stored full size, the padding left at the fill value 0). On a local
filesystem a worker then computes a tile into anonymous memory and writes it to the chunk file
with one write() (no encode copy), and a CG pass maps a tile without a decode copy. An array on
any other store, or with another codec, goes through zarr's own reads and writes
(``RawChunks.of`` returns None), so the fast path never changes what a store holds."""

from __future__ import annotations

import contextlib
import os
import uuid

import numpy as np


class RawChunks:
    """Chunk (i, j) of a 2-D float32 zarr array: read as a memory-mapped view, written as raw bytes."""

    def __init__(self, root, path, shape, chunks, key):
        self.root, self.shape, self.chunks, self._key = root, tuple(shape), tuple(chunks), key
        self.dir = os.path.join(root, path) if path else root
        self.nbytes = 4 * self.chunks[0] * self.chunks[1]

    @classmethod
    def of(cls, arr):
        """RawChunks for a zarr array whose chunk files are raw float32, else None."""
        try:
            from zarr.codecs import BytesCodec
            from zarr.storage import LocalStore

            meta = arr.metadata
            codecs = tuple(getattr(meta, "codecs", ()))
            ok = (isinstance(arr.store, LocalStore) and meta.zarr_format == 3 and len(arr.shape) == 2
                  and np.dtype(arr.dtype) == np.float32 and len(codecs) == 1 and isinstance(codecs[0], BytesCodec)
                  and str(getattr(codecs[0].endian, "value", codecs[0].endian)) == "little"
                  and getattr(meta, "fill_value", 0) == 0)
        except Exception:  # another zarr layout: use zarr's reads and writes
            return None
        if not ok:
            return None
        return cls(str(arr.store.root), arr.path, arr.shape, arr.chunks, meta.encode_chunk_key)

    def bounds(self, i, j):
        r0, c0 = i * self.chunks[0], j * self.chunks[1]
        return r0, min(self.shape[0], r0 + self.chunks[0]), c0, min(self.shape[1], c0 + self.chunks[1])

    def path(self, i, j):
        return os.path.join(self.dir, *self._key((i, j)).split("/"))

    def read(self, i, j):
        """The valid region of chunk (i, j), read-only and mapped (zeros if zarr never wrote it,
        which it skips for a chunk that is all fill value)."""
        r0, r1, c0, c1 = self.bounds(i, j)
        try:
            mm = np.memmap(self.path(i, j), dtype="<f4", mode="r", shape=self.chunks)
        except FileNotFoundError:
            return np.zeros((r1 - r0, c1 - c0), np.float32)
        return mm[:r1 - r0, :c1 - c0]

    def buffer(self, i, j):
        """(chunk buffer, writable view of chunk (i, j)'s valid region) to fill and then pass to
        :meth:`commit`. The buffer is anonymous memory (numpy advises large arrays for huge pages,
        so filling it costs few page faults); an edge chunk's padding holds the fill value 0."""
        r0, r1, c0, c1 = self.bounds(i, j)
        partial = (r1 - r0, c1 - c0) != tuple(self.chunks)
        buf = (np.zeros if partial else np.empty)(self.chunks, dtype="<f4")
        return buf, buf[:r1 - r0, :c1 - c0]

    def commit(self, i, j, buf):
        """Write ``buf`` (from :meth:`buffer`) with one write() to a new file that replaces chunk
        (i, j) atomically (as zarr's own writes do), so a reader sees the old chunk or the new one,
        never a part. The write goes to the page cache, which takes it to disk in the background;
        it releases the GIL, so commits of different chunks can run on two threads at once."""
        final = self.path(i, j)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = f"{final}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb") as f:
                f.write(memoryview(buf).cast("B"))
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def transpose_into(dst, src, block=512):
    """dst[...] = src.T in square blocks (both fit in cache; numpy releases the GIL per block)."""
    rows, cols = src.shape
    for r in range(0, rows, block):
        for c in range(0, cols, block):
            dst[c:c + block, r:r + block] = src[r:r + block, c:c + block].T
