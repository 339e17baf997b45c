"""neural-tangents peer (jax CPU): empirical NTK of the same ReLU MLP (empirical_ntk_fn, trace
over the outputs, standard parametrisation, weights loaded from gatednet when given) and the
infinite-width NTK of stax (NTK parametrisation, ReLU, no bias)."""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from workloads import CLASSES, D_IN, DEPTH_HIDDEN, WIDTH  # noqa: E402

import numpy as np  # noqa: E402
import jax  # noqa: E402

try:  # neural_tangents/__init__ imports its TensorFlow bridge (experimental.empirical_tf), which
    import tensorflow  # noqa: F401  needs tensorflow and tf2jax; run.sh installs nt --no-deps
except ImportError:  # without them, so stand in an empty module: the JAX API never uses it
    import types
    sys.modules["neural_tangents.experimental"] = types.ModuleType("neural_tangents.experimental")
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402


def mlp(depth_hidden, parameterization):
    layers = []
    for _ in range(depth_hidden):
        layers += [stax.Dense(WIDTH, W_std=np.sqrt(2.0), b_std=None,
                              parameterization=parameterization), stax.Relu()]
    layers += [stax.Dense(CLASSES, W_std=np.sqrt(2.0), b_std=None,
                          parameterization=parameterization)]
    return stax.serial(*layers)


def inputs(n):
    if common.have_fmnist():
        return common.read_idx_numpy("train_x", n)
    return common.synthetic_numpy(n, D_IN)[0]


def ntk_empirical(task):
    n = task["n"]
    init_fn, apply_fn, _ = mlp(DEPTH_HIDDEN, "standard")
    _, params = init_fn(jax.random.PRNGKey(0), (1, D_IN))
    wd = task.get("weights_dir")
    if wd and glob.glob(os.path.join(wd, "wv0_*.f32")):
        new, li = [], 0
        for p in params:  # stax Dense params are (W: in x out, b); gatednet stores out x in
            if p and p[0] is not None:
                (path,) = glob.glob(os.path.join(wd, f"wv{li}_*.f32"))
                r, c = map(int, path.rsplit("_", 1)[1][:-4].split("x"))
                w = np.fromfile(path, dtype=np.float32).reshape(r, c).T
                new.append((jax.numpy.asarray(w),) + tuple(p[1:]))
                li += 1
            else:
                new.append(p)
        params = new
    impl = task.get("implementation", 1)
    n_params = sum(int(np.prod(a.shape)) for p in params if p for a in p if a is not None)
    # Refuse what cannot fit in the memory available now (a shared machine must not swap or
    # OOM-kill): implementation 1 holds the n x K x P Jacobian (8.7 GiB peak at n = 1000 here,
    # 6.2 GiB of it the Jacobian); implementation 2 held 15 GiB resident at n = 1000 (3.6 GiB
    # peak at n = 500), growing as n².
    need = {1: 1.4 * n * CLASSES * n_params * 4, 2: 16 * 2**30 * (n / 1000) ** 2}.get(impl, 0)
    avail = _mem_available()
    if avail and need > 0.8 * avail:
        what = (f"the {n} x {CLASSES} x {n_params} Jacobian" if impl == 1 else
                "its NTK-vector products (15 GiB resident at n = 1000 when stopped, growing as n²)")
        return {"unavailable": f"not run: implementation {impl} needs about {need / 2**30:.0f} GiB for "
                               f"{what}; {avail / 2**30:.0f} GiB available"}
    x = jax.numpy.asarray(inputs(n))
    fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                     implementation=impl))
    fn = fn.lower(x, None, params).compile()  # ahead of time: no compile inside a timed run
    holder = {}

    def run():
        holder["k"] = None
        holder["k"] = fn(x, None, params).block_until_ready()
    res = common.measure(run, task["runs"], task.get("warmup", 1))
    k = np.asarray(holder["k"])
    # trace_axes=(-1,) averages over the outputs; gatednet's output=-1 sums them: x CLASSES
    name = nt.NtkImplementation(impl).name
    res["config"] = (f"implementation={impl} ({name}), jax.jit(empirical_ntk_fn(trace_axes=(-1,), "
                     f"vmap_axes=0)) compiled ahead of time, jax {jax.__version__}")
    res.update(items=n, implementation=name,
               samples=[[i, j, CLASSES * float(k[i, j])] for i, j in common.sample_pairs(n)])
    return res


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def ntk_infinite(task):
    n = task["n"]
    _, _, kernel_fn = mlp(task.get("depth", 6) - 1, "ntk")
    x = jax.numpy.asarray(inputs(n))
    fn = jax.jit(lambda a: kernel_fn(a, None, get="ntk")).lower(x).compile()
    holder = {}

    def run():
        holder["k"] = None
        holder["k"] = fn(x).block_until_ready()
    res = common.measure(run, task["runs"], task.get("warmup", 1))
    k = np.asarray(holder["k"])
    res.update(items=n, samples=[[i, j, float(k[i, j])] for i, j in common.sample_pairs(n)],
               config=f"stax kernel_fn(x, None, 'ntk') under jax.jit, compiled ahead of time, "
                      f"jax {jax.__version__}")
    return res


def info(task):
    import jaxlib
    return {"nt": getattr(nt, "__version__", None) or _dist_version("neural-tangents"),
            "jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
            "devices": [str(d) for d in jax.devices()]}


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    common.main({"ntk_empirical": ntk_empirical, "ntk_infinite": ntk_infinite, "info": info})
