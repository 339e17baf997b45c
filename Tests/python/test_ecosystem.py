"""gatednet in the notebook ecosystem: DLPack export of Buffers (numpy, torch), progress bars
(tqdm present and absent), typing files and docstrings on every public name."""
import ctypes
import gc
import inspect
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import gatednet as gn

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]


def _npk(rng, n=6):
    net = gn.Network(6, [5, 4], 3, "fixed_random_ii", seed=1)
    return net, net.npk(rng.standard_normal((n, 6)).astype(np.float32))


# ---- DLPack --------------------------------------------------------------------------------------

def test_dlpack_device_and_capsules(rng):
    _, k = _npk(rng)
    assert k.__dlpack_device__() == (1, 0)
    assert _capsule_name(k.__dlpack__()) == b"dltensor"
    assert _capsule_name(k.__dlpack__(stream=None)) == b"dltensor"
    assert _capsule_name(k.__dlpack__(max_version=(1, 0))) == b"dltensor_versioned"
    assert _capsule_name(k.__dlpack__(max_version=(0, 8))) == b"dltensor"
    with pytest.raises(BufferError, match="stream"):
        k.__dlpack__(stream=1)
    with pytest.raises(BufferError, match="dl_device"):
        k.__dlpack__(dl_device=(2, 0))
    # An unconsumed capsule releases its reference to the Buffer.
    ref = weakref.ref(k)
    capsule = k.__dlpack__(max_version=(1, 0))
    del k
    gc.collect()
    assert ref() is not None
    del capsule
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("make, dtype", [
    (lambda net, x: net.npk(x), np.float32),
    (lambda net, x: net.predict_classes(x), np.int32),
    (lambda net, x: net.active_paths(x), np.float64),
    (lambda net, x: net.gates(x, 0, packed=True), np.uint64),
])
def test_numpy_from_dlpack_shares_memory(make, dtype, rng):
    net = gn.Network(6, [5, 4], 3, "fixed_random_ii", seed=1)
    buf = make(net, rng.standard_normal((6, 6)).astype(np.float32))
    a = np.from_dlpack(buf)
    assert a.dtype == dtype and a.shape == buf.shape and a.ctypes.data == buf.address
    view = np.asarray(buf)
    a.flat[0] = 7
    assert view.flat[0] == 7
    ref = weakref.ref(buf)
    del buf, view
    gc.collect()
    assert ref() is not None and a.flat[0] == 7  # the array keeps the memory alive
    del a
    gc.collect()
    assert ref() is None


def test_torch_from_dlpack_shares_memory(rng):
    torch = pytest.importorskip("torch")
    _, k = _npk(rng)
    t = torch.from_dlpack(k)
    assert t.dtype == torch.float32 and tuple(t.shape) == k.shape and t.data_ptr() == k.address
    t[1, 2] = 5.5  # write through torch, read through numpy
    assert np.asarray(k)[1, 2] == 5.5
    np.asarray(k)[0, 0] = -3.0  # and back
    assert t[0, 0].item() == -3.0
    expected = np.asarray(k).copy()
    ref = weakref.ref(k)
    del k
    gc.collect()
    assert ref() is not None
    np.testing.assert_array_equal(t.numpy(), expected)  # outlives the Python Buffer reference
    del t
    gc.collect()
    assert ref() is None
    copy = torch.from_dlpack(gn.Network(6, [5], 3).predict(np.ones((2, 6), np.float32)).__dlpack__(copy=True))
    assert tuple(copy.shape) == (2, 3)


# ---- progress bars -------------------------------------------------------------------------------

def _data(rng):
    return rng.standard_normal((40, 6)).astype(np.float32), (np.arange(40) % 3).astype(np.int32)


def _hide_tqdm(monkeypatch):
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_fit_progress_with_tqdm(rng, capsys):
    pytest.importorskip("tqdm")
    x, y = _data(rng)
    seen = []
    history = gn.Network(6, [5], 3, "fixed_random_ii").fit(x, y, epochs=3, progress=True, callback=seen.append)
    assert len(history) == 3 and seen == history  # the callback still runs
    err = capsys.readouterr().err
    assert "fit Network" in err and "3/3" in err and "epoch" in err


def test_fit_progress_without_tqdm(rng, capsys, monkeypatch):
    _hide_tqdm(monkeypatch)
    x, y = _data(rng)
    gn.ConvNetwork([("conv", 2, 3), ("gap",), ("dense", 3)], (2, 3, 1), "fixed_random_ii").fit(
        x, y, epochs=2, progress=True)
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("fit ConvNetwork")]
    assert len(lines) == 2 and "epoch 2/2" in lines[1] and "loss" in lines[1]


@pytest.mark.parametrize("hidden", [False, True])
def test_kernel_progress(rng, capsys, monkeypatch, hidden):
    if hidden:
        _hide_tqdm(monkeypatch)
    else:
        pytest.importorskip("tqdm")
    x = rng.standard_normal((40, 6)).astype(np.float32)
    net = gn.Network(6, [5, 4], 3, "fixed_random_ii")
    np.testing.assert_array_equal(np.asarray(net.npk(x, progress=True)), np.asarray(net.npk(x)))
    conv = gn.ConvNetwork([("conv", 2, 3), ("gap",), ("dense", 3)], (2, 3, 1), "fixed_random_ii")
    fractions = []
    k = np.asarray(conv.npk(x, progress=True))
    np.testing.assert_array_equal(k, np.asarray(conv.npk(x, progress=fractions.append)))
    np.testing.assert_array_equal(k, np.asarray(conv.npk(x)))  # blocks and mirroring give the same matrix
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 10
    np.testing.assert_array_equal(np.asarray(conv.npk(x[:7], x, progress=True)), k[:7])
    err = capsys.readouterr().err
    assert "kernel npk" in err and "100%" in err
    with pytest.raises(gn.CancelledError):
        conv.npk(x, progress=lambda f: f < 0.3)


# ---- typing and docstrings -----------------------------------------------------------------------

def test_typing_files_are_installed():
    root = Path(gn.__file__).parent
    assert (root / "py.typed").is_file()
    stub = (root / "_core.pyi").read_text()
    for name in ("class Buffer", "def __dlpack__", "class Network", "class ConvNetwork", "def kernel_nu",
                 "def _hidden_state", "def _tensor_layer"):
        assert name in stub
    compile(stub, "_core.pyi", "exec")  # valid Python syntax


def _public_members(cls):
    for name, member in vars(cls).items():
        if not name.startswith("_"):
            yield name, member
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("gatednet"):
            for name, member in vars(base).items():
                if not name.startswith("_"):
                    yield name, member


def test_every_public_name_has_a_docstring():
    assert len(gn.__all__) == len(set(gn.__all__))
    missing = []
    for name in gn.__all__:
        obj = getattr(gn, name)
        if isinstance(obj, (str, tuple)):
            continue
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for member_name, member in _public_members(obj):
                if not (callable(member) or isinstance(member, (property, staticmethod, classmethod))
                        or inspect.isdatadescriptor(member)):
                    continue  # plain data (e.g. GatedNetError.status), described in the class docstring
                doc = member.__doc__ if not isinstance(member, (staticmethod, classmethod)) else member.__func__.__doc__
                if not (doc or "").strip():
                    missing.append(f"{name}.{member_name}")
    assert not missing, f"no docstring: {missing}"
    assert "DLPack" in gn.__doc__ and "progress=True" in gn.__doc__


def test_core_stub_covers_the_extension():
    """Every function, class and method of gatednet._core is declared in _core.pyi."""
    import ast

    tree = ast.parse((Path(gn.__file__).parent / "_core.pyi").read_text())
    declared, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            names |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
            classes[node.name] = names
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            for b in bases:
                classes[node.name] |= classes.get(b, set())
            declared.add(node.name)
        elif isinstance(node, ast.FunctionDef):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
    missing = []
    for name, obj in vars(gn._core).items():
        if name.startswith("__"):
            continue
        if name not in declared:
            missing.append(name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr in vars(obj):
                if attr.startswith("__") and attr not in ("__dlpack__", "__dlpack_device__", "__enter__", "__exit__"):
                    continue
                if attr not in classes.get(name, set()):
                    missing.append(f"{name}.{attr}")
    assert not missing, f"not in _core.pyi: {missing}"
