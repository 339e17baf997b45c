"""Limits of the C ABI seen from Python (issue 12): sizes that cannot be allocated give a
MemoryError that names the size, re-entry from a callback gives BusyError, and inputs whose
activations overflow float32 give an ArgumentError (GN_ERR_NOT_FINITE), not NaN outputs."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gatednet as gn

X = np.linspace(-1, 1, 40, dtype=np.float32).reshape(8, 5)
Y = np.arange(8, dtype=np.int32) % 3


def test_busy_error_is_a_gatednet_error():
    assert issubclass(gn.BusyError, gn.GatedNetError)


def test_reentry_from_fit_callback_is_busy():
    net = gn.Network(5, [8], 3, seed=1)
    seen = []

    def callback(metrics):
        try:
            net.predict(X)
        except gn.BusyError as e:
            seen.append(str(e))

    net.fit(X, Y, epochs=2, batch_size=4, callback=callback)
    assert len(seen) == 2 and seen[0]
    assert np.asarray(net.predict(X)).shape == (8, 3)  # usable afterwards


def test_huge_kernel_result_memory_error_names_the_size():
    # 2^24 rows: the input Gram is 2^48 floats = 1.1 PB, more than any address space.
    net = gn.Network(1, [4], 1, seed=2)
    x = np.zeros((1 << 24, 1), dtype=np.float32)
    with pytest.raises(MemoryError, match=r"1125899906842624 bytes"):
        net.input_gram(x)


def test_overflowing_activations_are_not_finite():
    net = gn.Network(5, [16, 16], 3, regime="decoupled", seed=3)
    big = np.full((8, 5), 3e38, dtype=np.float32)
    big[:, ::2] *= -1
    with pytest.raises(gn.ArgumentError, match="NaN or Inf") as info:
        net.predict(big)
    assert info.value.status_name == "GN_ERR_NOT_FINITE"
    assert np.isfinite(np.asarray(net.predict(X))).all()


def test_kernel_eigenvalues_too_large_for_memory():
    """kernel_eigenvalues on a 65,536 x 65,536 kernel (16 GiB of zero pages) needs a 32 GiB
    double copy: with the address space capped, OutOfMemoryError naming 34359738368 bytes, and
    the interpreter lives (it used to abort)."""
    code = textwrap.dedent("""
        import resource, numpy as np, gatednet as gn
        n = 65536
        limit = n * n * 4 + (4 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        k = np.zeros((n, n), dtype=np.float32)
        try:
            gn.kernel_eigenvalues(k)
        except gn.OutOfMemoryError as e:
            print("OOM", e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OOM") and "34359738368 bytes" in r.stdout, r.stdout


def test_kernel_scratch_beyond_memory_is_a_memory_error_not_an_abort():
    # 2^26 rows x 2^16 gates: the float gates of the rows alone would be 17.6 TB (the NTK's
    # factors 70 TB). Refused with the size before any caller-sized scratch is allocated.
    net = gn.Network(1, [2 ** 16], 1, regime="fixed_random_ii", seed=1)
    x = np.ones((2 ** 26, 1), np.float32)
    for kind in ("npk", "overlap", "ntk"):
        with pytest.raises(MemoryError, match=r"kernel scratch: cannot allocate \d+ bytes \(\d+\.\d TB\)"):
            net.kernel(x, x[:1], kind=kind)
