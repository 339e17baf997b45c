"""Plot helpers shared by recipes: matplotlib (Agg backend), imported only when a plot is made.

Recipes use :mod:`gatednet.plot` for the library's standard pictures when it is installed with
the binding, and these helpers for recipe-specific figures.
"""
from __future__ import annotations

__all__ = ["pyplot", "save", "library_plot"]


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend; None if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def library_plot():
    """The gatednet.plot module, or None if this build does not have it."""
    try:
        from .. import plot
    except ImportError:
        return None
    return plot


def save(fig, out_dir, name):
    """Save ``fig`` as out_dir/name (PNG, 110 dpi), close it, return the file name. Written to a
    temporary file first: an interrupted save leaves the previous plot whole."""
    import os

    from .report import _write_atomic

    try:
        _write_atomic(os.path.join(os.fspath(out_dir), name),
                      lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), binary=True)
    finally:
        pyplot().close(fig)
    return name
