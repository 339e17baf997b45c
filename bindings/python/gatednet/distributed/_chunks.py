"""The chunk files of a kernel store, memory-mapped in place.

kernel_to_zarr creates its arrays so that each chunk file holds exactly the chunk's C-order
little-endian float32 values: zarr v3, a regular chunk grid, the single "bytes" codec, no
compressor (edge chunks are stored full size, the padding left at the fill value 0). On a local
filesystem a worker then maps a chunk file: the library writes a tile straight into the page
cache (no tile buffer, no encode copy), and a CG pass reads a tile without a decode copy. An
array on any other store, or with another codec, goes through zarr's own reads and writes
(``RawChunks.of`` returns None), so the fast path never changes what a store holds."""

from __future__ import annotations

import contextlib
import mmap
import os
import uuid

import numpy as np


class RawChunks:
    """Chunk (i, j) of a 2-D float32 zarr array as a memory-mapped numpy view."""

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

    @contextlib.contextmanager
    def writing(self, i, j):
        """A writable view of chunk (i, j)'s valid region, backed by a new file that replaces the
        chunk atomically when the block ends without error (as zarr's own writes do); a reader
        sees the old chunk or the new one, never a part. The mapping is closed on exit, without
        msync: the pages go to disk with the page cache's writeback, as any file write does."""
        r0, r1, c0, c1 = self.bounds(i, j)
        final = self.path(i, j)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = f"{final}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "w+b") as f:
                f.truncate(self.nbytes)  # zeros: the fill value of the padding
                m = mmap.mmap(f.fileno(), self.nbytes)
            try:
                view = np.frombuffer(m, dtype="<f4").reshape(self.chunks)[:r1 - r0, :c1 - c0]
                yield view
                del view
            finally:
                try:
                    m.close()
                except BufferError:  # a view escaped the block: the mapping closes when it is freed
                    pass
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
