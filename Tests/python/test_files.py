"""File handling through the binding (issue 12): paths are bytes, loaders refuse FIFOs and
devices at once, non-finite weights are refused at load, and an unallocatable label
corruption is a MemoryError."""
import os
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

import gatednet as gn

SMALL = [("conv", 2, 3), ("gap",), ("dense", 3)]


def test_save_to_a_latin1_name_creates_exactly_that_name(tmp_path):
    d = os.fsencode(tmp_path)
    net = gn.Network(4, [5], 2, seed=1)
    net.save(d + b"/caf\xe9.gnet")
    assert os.listdir(d) == [b"caf\xe9.gnet"]
    # bytes, the str that os.fsdecode gives (surrogate escapes), and a Path name the same file
    for p in (d + b"/caf\xe9.gnet", os.fsdecode(d + b"/caf\xe9.gnet"), tmp_path / os.fsdecode(b"caf\xe9.gnet")):
        np.testing.assert_array_equal(np.asarray(gn.Network.load(p).weights("value", 0)),
                                      np.asarray(net.weights("value", 0)))
    with pytest.raises(gn.FileError, match=r"caf\\xFF\.gnet"):
        gn.Network.load(d + b"/caf\xff.gnet")  # never written: must not find caf\xe9.gnet
    conv = gn.ConvNetwork(SMALL, (5, 5, 1), seed=2)
    conv.save(d + b"/\xe9conv.gnet")
    assert sorted(os.listdir(d)) == [b"caf\xe9.gnet", b"\xe9conv.gnet"]
    assert gn.ConvNetwork.load(d + b"/\xe9conv.gnet").to_bytes() == conv.to_bytes()
    with pytest.raises(gn.FileError):
        gn.ConvNetwork.load(d + b"/\xffconv.gnet")


def test_idx_files_under_non_utf8_names(tmp_path):
    name = os.fsencode(tmp_path) + b"/\xe9tiquettes.idx"
    with open(name, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    assert gn.idx_dims(name) == (3,)
    assert list(np.asarray(gn.load_idx(name))) == [7, 8, 9]
    assert list(np.asarray(gn.load_idx(os.fsdecode(name)))) == [7, 8, 9]
    with pytest.raises(gn.FileError):
        gn.load_idx(os.fsencode(tmp_path) + b"/\xfftiquettes.idx")


def test_fifo_and_devices_are_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.gnet"
    os.mkfifo(fifo)

    def unblock():  # a reader stuck on the FIFO gets EOF instead of hanging the run
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    watchdog = threading.Timer(20, unblock)
    watchdog.start()
    try:
        for path in (fifo, "/dev/zero", "/dev/null"):
            for load in (gn.Network.load, gn.ConvNetwork.load, gn.load_idx, gn.idx_dims):
                with pytest.raises(gn.FileError, match="not a regular file"):
                    load(path)
    finally:
        watchdog.cancel()


def poisoned(data, value, bad):
    """`data` with the first little-endian copy of float32 `value` after the header set to
    `bad`, and the trailing CRC-32 recomputed."""
    at = data.index(struct.pack("<f", value), 24)
    out = bytearray(data)
    out[at:at + 4] = struct.pack("<f", bad)
    out[-4:] = struct.pack("<I", zlib.crc32(bytes(out[:-4])))
    return bytes(out)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_behind_a_valid_checksum_are_corrupt(tmp_path, bad):
    net = gn.Network(4, [6], 3, seed=3)
    w = float(np.asarray(net.weights("value", 0)).ravel()[5])
    data = poisoned(net.to_bytes(), w, bad)
    with pytest.raises(gn.CorruptFileError, match="NaN or Inf"):
        gn.Network.from_bytes(data)
    (tmp_path / "p.gnet").write_bytes(data)
    with pytest.raises(gn.CorruptFileError, match="NaN or Inf"):
        gn.Network.load(tmp_path / "p.gnet")
    conv = gn.ConvNetwork(SMALL, (5, 5, 1), seed=4)
    t = float(np.asarray(conv.tensor(0)).ravel()[2])
    with pytest.raises(gn.CorruptFileError, match="NaN or Inf"):
        gn.ConvNetwork.from_bytes(poisoned(conv.to_bytes(), t, bad))


def test_corrupt_labels_beyond_memory_is_a_memory_error():
    # In a child with a capped address space: 2^33 labels reserved (never touched), whose
    # 64 GiB index workspace cannot be allocated. Before the fix the process aborted.
    code = r"""
import mmap, resource, numpy as np, gatednet as gn
n = 1 << 33
with open("/proc/self/statm") as f:
    mapped = int(f.read().split()[0]) * mmap.PAGESIZE
cap = mapped + 4 * n + (8 << 30)
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
m = mmap.mmap(-1, 4 * n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0x4000))
labels = np.frombuffer(m, dtype=np.int32)
try:
    gn.corrupt_labels(labels, 10, 1.0, seed=1)
except MemoryError as e:
    print("MemoryError", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("MemoryError") and "8589934592" in r.stdout, r.stdout
