"""Training curves: one panel per quantity (loss, then each metric), train and validation lines.

    nnc run examples/iris.nn --plot curves.png
    from nncompiler.train.plot import plot_history; plot_history(hist, "curves.png")

Drawn with matplotlib's Agg canvas (no window, no global pyplot state), each
panel PANEL_SIZE inches at DPI dots per inch: two panels make a 1000x360 PNG.
The format follows the file's extension (png, svg, pdf). Needs the optional
`plot` extra: `pip install 'nncompiler[plot]'`.
"""
from __future__ import annotations

import os

from ..errors import NNCError
from .callbacks import require_extra

PANEL_SIZE = (5.0, 3.6)     # inches
DPI = 100


def panels(history: dict) -> list[str]:
    """The quantities to draw, in order: `loss`, then each metric (a val_-only key keeps its name)."""
    out: list[str] = []
    for key in history:
        base = key[len("val_"):] if key.startswith("val_") and key[len("val_"):] in history else key
        if base not in out:
            out.append(base)
    return out


def check_format(path: str) -> str:
    """The file format `path`'s extension asks for, if matplotlib can write it."""
    require_extra("matplotlib", "plot", "Plotting training curves (--plot)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    if fmt not in FigureCanvasAgg.get_supported_filetypes():
        raise NNCError(f"{path}: cannot draw a .{fmt} file (use .png, .svg or .pdf)")
    return fmt


def plot_history(history: dict, path: str, title: str | None = None) -> tuple[int, int]:
    """Draw `history` (as fit returns it) to `path`; returns the size in pixels."""
    require_extra("matplotlib", "plot", "Plotting training curves (--plot)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.fspath(path)
    fmt = check_format(path)
    names = panels(history) or ["loss"]
    fig = Figure(figsize=(PANEL_SIZE[0] * len(names), PANEL_SIZE[1]), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            values = history.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o" if len(values) < 30 else None,
                        markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    from ..fsutil import atomic_write
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=DPI), make_dirs=False)
    except OSError as e:
        raise NNCError(f"{path}: cannot write the plot: {e.strerror or e}") from None
    w, h = fig.get_size_inches() * DPI
    return round(w), round(h)
