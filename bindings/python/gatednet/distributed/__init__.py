"""gatednet on Dask: tiled kernels into zarr, kernel ridge beyond memory, experiment sweeps.

Needs ``dask``, ``distributed`` and ``zarr`` (requirements-dev.txt); ``import gatednet`` does not.

    from gatednet import distributed as gd
    client = gd.connect(workers=2)                      # or connect(scheduler="tcp://host:8786")
    K = gd.kernel_to_zarr("net.gn", "x_train.npy", "K.zarr", kind="npk", client=client)
    Kt = gd.kernel_to_zarr("net.gn", "x_test.npy", "Kt.zarr", xb="x_train.npy", client=client)
    alpha, info = gd.ridge_fit("K.zarr", gatednet.kernel_targets(y, 10), ridge=1e-3 * mean_diag)
    classes = gatednet.kernel_classes(gd.ridge_predict("Kt.zarr", alpha).astype("float32"))

Run again after a crash: finished tiles are skipped. See docs/distributed.md for several
machines and the cost model.
"""

from ._common import close_client, connect
from .executor import DaskExecutor, TaskFailed
from .kernels import kernel_array, kernel_to_zarr, stored_network, tile_for, tiles_done
from .ridge import kernel_diagonal, ridge_fit, ridge_predict

__all__ = ["connect", "close_client", "DaskExecutor", "TaskFailed", "kernel_array", "kernel_to_zarr", "stored_network",
           "tile_for", "tiles_done", "kernel_diagonal", "ridge_fit", "ridge_predict"]
