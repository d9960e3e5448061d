"""Plots of the paper's evaluation curves: ROC (VAL against FAR, log-scale FAR), section "Evaluation".

Several curves go on one figure, e.g. to compare models or, for the harmonic embeddings of the appendix, v1 vs
v1, v2 vs v2 and v2 vs v1 embeddings. Rendering uses matplotlib's Agg canvas directly (no ``pyplot``, no global
backend switch), so it works headless and leaves the caller's matplotlib state alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facenet_tf.atomic import atomic_file


def _far_val(label: str, curve: Any) -> tuple[np.ndarray, np.ndarray]:
    """A ``(far, val)`` pair, or anything with ``.far`` and ``.val`` (a ``verification.RocCurve``)."""
    if hasattr(curve, "far") and hasattr(curve, "val"):
        far, val = curve.far, curve.val
    else:
        try:
            far, val = curve
        except (TypeError, ValueError):
            raise ValueError(
                f"curve {label!r}: expected (far, val) arrays or a RocCurve, got {type(curve).__name__}"
            ) from None
    far = np.asarray(far, dtype=np.float64)
    val = np.asarray(val, dtype=np.float64)
    if far.ndim != 1 or far.shape != val.shape or far.size == 0:
        raise ValueError(
            f"curve {label!r}: far and val must be non-empty 1-D arrays of one length, got {far.shape} and {val.shape}"
        )
    return far, val


def plot_roc(
    curves: Mapping[str, Any],
    path: str | os.PathLike,
    title: str = "ROC",
    far_target: float | None = 1e-3,
    min_far: float | None = None,
) -> Path:
    """Write a PNG of one or more ROC curves, VAL against FAR with a logarithmic FAR axis.

    Args:
        curves: ``{label: (far, val)}`` (arrays of one length) or ``{label: RocCurve}``; drawn in the given order.
        path: the PNG to write, atomically (parent folders are created).
        title: figure title.
        far_target: draw a dotted vertical line at this FAR (the paper's 1e-3); ``None`` for none.
        min_far: left end of the FAR axis; by default the smallest positive FAR of any curve (at most 1e-4).
            Points with FAR = 0 cannot appear on a log axis and are left out.

    Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_roc needs at least one curve")
    data = {label: _far_val(label, curve) for label, curve in curves.items()}
    positive = [far[far > 0].min() for far, _ in data.values() if np.any(far > 0)]
    left = min_far if min_far is not None else min([1e-4, *positive])

    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, (far, val) in data.items():
        shown = far > 0
        axes.plot(far[shown], val[shown], label=label)  # the ROC polyline, as integrated for the AUC
    if far_target is not None:
        axes.axvline(far_target, color="grey", linestyle=":", linewidth=1, label=f"FAR = {far_target:g}")
    axes.set_xscale("log")
    axes.set_xlim(left, 1.0)
    axes.set_ylim(0.0, 1.01)
    axes.set_xlabel("FAR (false accept rate)")
    axes.set_ylabel("VAL (validation rate)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()

    path = Path(path)
    with atomic_file(path) as tmp:  # a reader sees the previous PNG or the new one, never a part
        figure.savefig(tmp, format="png")
    return path


def _thousands(value: float, _position=None) -> str:
    """An axis label of a count: 180000 -> "180k", 2500000 -> "2.5M", 500 -> "500"."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if abs(value) >= 1e3 else f"{value:g}"


def plot_training_curves(
    runs: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike,
    title: str = "training",
    panels: tuple[tuple[str, tuple[str, ...]], ...] = (("loss", ("loss",)), ("active fraction", ("active_fraction",)),
                                                       ("mean D(a,p) solid, D(a,n) dashed", ("mean_d_ap", "mean_d_an"))),
) -> Path:
    """Write a PNG of training curves against images seen: one panel per ``panels`` entry (its title and the
    metrics drawn in it, the first solid, the next dashed, dotted), one colour per run label.

    Args:
        runs: ``{label: {metric: [(images_seen, value), ...]}}``; several labels may share a colour by sharing the
            part before " (" (the seeds of one configuration: "hardest (seed 0)", "hardest (seed 1)").
        path: the PNG to write, atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    if not runs:
        raise ValueError("plot_training_curves needs at least one run")
    groups = list(dict.fromkeys(label.split(" (")[0] for label in runs))
    colours = {group: f"C{i % 10}" for i, group in enumerate(groups)}
    figure = Figure(figsize=(5.0 * len(panels), 4.2), dpi=100)
    FigureCanvasAgg(figure)
    for n, (panel_title, metrics) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), n + 1)
        for label, curves in runs.items():
            group = label.split(" (")[0]
            for metric, style in zip(metrics, ("-", "--", ":")):
                points = np.asarray(curves.get(metric) or [], dtype=np.float64).reshape(-1, 2)
                if len(points):
                    first = n == 0 and metric == metrics[0] and label == next(k for k in runs if k.startswith(group))
                    axes.plot(points[:, 0], points[:, 1], style, color=colours[group], marker=".", alpha=0.8,
                              label=group if first else None)
        axes.set_xlabel("images seen")
        axes.xaxis.set_major_formatter(FuncFormatter(_thousands))
        axes.set_title(panel_title)
        axes.grid(True, alpha=0.3)
    figure.legend(loc="upper center", ncol=min(len(groups), 6), fontsize="small")
    figure.suptitle(title, y=0.02, va="bottom", fontsize="small")
    figure.tight_layout(rect=(0, 0.05, 1, 0.9))
    path = Path(path)
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
