"""Plots of a report (matplotlib, an optional extra): per tensor, a heatmap of analytic minus
numerical values laid out like the tensor, and a scatter of analytic against numerical values.

A right gradient is a flat heatmap and a scatter on the diagonal; a constant factor is a
scatter on another line through the origin (drawn, with its slope); a few wrong elements stand
out as hot cells and as red points off the diagonal. A tensor whose elements were not all
probed ("directional", "sample", a budget) has no heatmap: its plot shows the elements probed
one by one that the report lists (`TensorReport.worst`: the localized wrong ones, or the sampled
ones), where they lie in the tensor and their values with error bars. Figures are built without
pyplot, so no window opens and no global state changes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import InvalidArgument

if TYPE_CHECKING:
    from ._types import Report, TensorReport

#: At most this many elements go into a scatter (the failing ones always do).
SCATTER_POINTS = 20_000
ROW_HEIGHT, WIDTH = 3.2, 10.0
#: Characters per line of a scatter's title (a long diagnosis wraps instead of running off the plot).
TITLE_WIDTH = 60


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "plots need matplotlib: `pip install matplotlib` (or gradprobe[report])."
        ) from error
    return Figure


def default_tensors(report: Report) -> list[str]:
    """The tensors worth plotting: the ones that did not pass, or all of them when all passed."""
    unsure = [name for name, t in report.tensors.items() if t.status != "pass"]
    return unsure or list(report.tensors)


def _selection(report: Report, tensors: str | Iterable[str] | None) -> list[str]:
    if tensors is None:
        return default_tensors(report)
    names = [tensors] if isinstance(tensors, str) else list(tensors)
    unknown = [name for name in names if name not in report.tensors]
    if unknown or not names:
        raise InvalidArgument(
            f"`tensors` must name tensors of the report ({', '.join(report.tensors)}); got {names!r}.",
            argument="tensors",
        )
    return names


def _as_matrix(values: np.ndarray) -> np.ndarray:
    """A tensor laid out in 2-D: a scalar as 1x1, a vector as one row, N-D as (first axis, rest)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 0:
        return values.reshape(1, 1)
    if values.ndim == 1:
        return values.reshape(1, -1)
    return values.reshape(values.shape[0], -1)


def _wrong(tensor: TensorReport) -> np.ndarray:
    a, n, bar = (np.asarray(v) for v in (tensor.analytic, tensor.numeric, tensor.error_bar))
    with np.errstate(invalid="ignore"):
        return ~(np.abs(a - n) <= bar)


def _parts(values: Any) -> np.ndarray:
    """Values as points of a scatter: real ones as they are, a complex tensor's as its real and
    imaginary parts (two points per element, in that order)."""
    values = np.asarray(values)
    return np.stack([values.real, values.imag], axis=-1).ravel() if np.iscomplexobj(values) else values.astype(float).ravel()


def _label_parts(axes: Any, per: int) -> None:
    if per == 2:
        axes.set_xlabel("numerical (real and imaginary parts)")
        axes.set_ylabel("analytic (real and imaginary parts)")


def _reference_lines(axes: Any, tensor: TensorReport, numeric: np.ndarray) -> None:
    """The diagonal, and the line of slope `tensor.scale` when there is one, across `numeric`'s range."""
    finite = numeric[np.isfinite(numeric)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    line = np.array([-span, span]) if span else np.array([-1.0, 1.0])
    axes.plot(line, line, "--", color="tab:green", linewidth=1, label="analytic = numerical", zorder=1)
    if tensor.scale is not None and tensor.scale != 1 and np.isfinite(tensor.scale):
        axes.plot(line, tensor.scale * line, ":", color="tab:red", linewidth=1,
                  label=f"analytic = {tensor.scale:.3g} × numerical", zorder=1)  # fmt: skip
    axes.set_xlabel("numerical")
    axes.set_ylabel("analytic")
    axes.set_title(textwrap.fill(f"{tensor.name}: {tensor.diagnosis or tensor.status}", TITLE_WIDTH), fontsize=10)
    axes.legend(fontsize=8, loc="best")


def _layout(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (rows, columns) `_as_matrix` lays a tensor of `shape` out in."""
    if len(shape) < 2:
        return 1, int(shape[0]) if shape else 1
    return int(shape[0]), math.prod(shape[1:])


def _position(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, int]:
    """(row, column) of an element in the 2-D layout of `_as_matrix`."""
    if not shape:
        return 0, 0
    if len(shape) == 1:
        return 0, int(index[0])
    return int(index[0]), int(np.ravel_multi_index(tuple(index[1:]), shape[1:]))


def element_outcomes(tensor: TensorReport) -> list[str]:
    """Per element of `tensor.worst`: "wrong" (analytic and numerical values apart by more than
    its error bar, away from a kink), "kink" (at a kink: no derivative to compare), or "agree"
    (within its error bar, or no error bar known)."""
    kinks = set(tensor.kinks)
    outcomes = []
    for element in tensor.worst:
        if element.index in kinks:
            outcomes.append("kink")
        elif element.error_bar is not None and not abs(element.analytic - element.numeric) <= element.error_bar:
            outcomes.append("wrong")
        else:
            outcomes.append("agree")
    return outcomes


#: How the elements of a tensor not probed whole are drawn, by outcome.
_ELEMENT_STYLE = {"agree": ("0.45", "agree"), "kink": ("tab:orange", "at a kink"), "wrong": ("tab:red", "wrong")}


def draw_elements(tensor: TensorReport, where_axes: Any, scatter_axes: Any) -> None:
    """Draw the elements of `tensor.worst` (probed one by one in a tensor not probed whole): where
    they lie in the tensor, laid out as the heatmap would be, and analytic against numerical
    values with their error bars; wrong ones in red."""
    rows, columns = _layout(tensor.shape)
    outcomes = np.array(element_outcomes(tensor))
    where = np.array([_position(e.index, tensor.shape) for e in tensor.worst], dtype=float).reshape(-1, 2)
    x, y = _parts([e.numeric for e in tensor.worst]), _parts([e.analytic for e in tensor.worst])
    per = len(x) // max(len(tensor.worst), 1)  # 2 for a complex tensor: a point per part
    bars = np.array([np.nan if e.error_bar is None else e.error_bar for e in tensor.worst], dtype=float)
    bars = np.repeat(np.where(np.isfinite(bars), bars, 0.0), per)
    finite = np.isfinite(x) & np.isfinite(y)
    for outcome, (color, label) in _ELEMENT_STYLE.items():
        mine = outcomes == outcome
        if not mine.any():
            continue
        where_axes.scatter(where[mine, 1], where[mine, 0], s=28, color=color, label=label, zorder=3)
        shown = np.repeat(mine, per) & finite
        if shown.any():
            scatter_axes.errorbar(x[shown], y[shown], xerr=bars[shown], fmt="o", markersize=4, color=color,
                                  ecolor=color, elinewidth=1, capsize=3, label=label, zorder=3)  # fmt: skip
    if len(tensor.worst) <= 8:
        for element, (row, column) in zip(tensor.worst, where):
            where_axes.annotate(str(element.index), (column, row), textcoords="offset points", xytext=(4, 4), fontsize=7)
    where_axes.set_xlim(-0.5, columns - 0.5)
    where_axes.set_ylim(rows - 0.5, -0.5)  # row 0 at the top, as in the heatmap
    where_axes.grid(True, linewidth=0.3)
    count, probed = len(tensor.worst), sum(tensor.counts.values())
    listed = f"{count} worst of {probed}" if probed > count else f"{count}"
    where_axes.set_title(f"{tensor.name} {tensor.shape}: {listed} element{'' if probed == 1 else 's'} probed one by one",
                         fontsize=10)  # fmt: skip
    where_axes.set_xlabel("column" if len(tensor.shape) >= 2 else "element")
    where_axes.set_ylabel("row" if len(tensor.shape) >= 2 else "")
    if len(tensor.shape) < 2:
        where_axes.set_yticks([])
    where_axes.legend(fontsize=8, loc="best")
    _reference_lines(scatter_axes, tensor, x)
    _label_parts(scatter_axes, per)


def draw_tensor(tensor: TensorReport, heat_axes: Any, scatter_axes: Any) -> None:
    """Draw one tensor's heatmap and scatter on the given axes (for a tensor not probed whole,
    its elements probed one by one, `draw_elements`)."""
    if tensor.analytic is None or tensor.numeric is None:
        if tensor.worst:
            draw_elements(tensor, heat_axes, scatter_axes)
            return
        for axes in (heat_axes, scatter_axes):
            axes.text(0.5, 0.5, f"{tensor.name}: no per-element values\n(no element was probed one by one)",
                      ha="center", va="center", transform=axes.transAxes)  # fmt: skip
            axes.set_axis_off()
        return
    a, n = np.asarray(tensor.analytic), np.asarray(tensor.numeric)
    per = 2 if np.iscomplexobj(a) or np.iscomplexobj(n) else 1
    # A complex tensor's disagreement is drawn as its size (|analytic − numerical|).
    difference = _as_matrix(np.abs(a - n) if per == 2 else a - n)
    finite = np.isfinite(difference)
    limit = float(np.max(np.abs(difference[finite]))) if finite.any() else 1.0
    image = heat_axes.imshow(
        np.ma.masked_invalid(difference), cmap="RdBu_r", vmin=-limit or -1, vmax=limit or 1,
        aspect="auto" if difference.shape[1] > 4 * difference.shape[0] else "equal", interpolation="nearest",
    )  # fmt: skip
    heat_axes.figure.colorbar(image, ax=heat_axes, shrink=0.9)
    from matplotlib.ticker import MaxNLocator

    for axis, length in ((heat_axes.yaxis, difference.shape[0]), (heat_axes.xaxis, difference.shape[1])):
        if length <= 10:
            axis.set_ticks(range(length))
        else:
            axis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    heat_axes.set_title(f"{tensor.name} {tensor.shape}: {'|analytic − numerical|' if per == 2 else 'analytic − numerical'}", fontsize=10)
    heat_axes.set_xlabel("column" if a.ndim >= 2 else "element")
    heat_axes.set_ylabel("row" if a.ndim >= 2 else "")
    if a.ndim < 2:
        heat_axes.set_yticks([])

    wrong = np.repeat(_wrong(tensor).ravel() if tensor.error_bar is not None else np.zeros(a.size, bool), per)
    x, y = _parts(n), _parts(a)
    keep = np.flatnonzero(~wrong)
    if len(keep) > SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(keep, SCATTER_POINTS, replace=False))
    scatter_axes.scatter(x[keep], y[keep], s=12, color="0.45", label="agree", zorder=2)
    if wrong.any():
        scatter_axes.scatter(x[wrong], y[wrong], s=16, color="tab:red", label="wrong", zorder=3)
    _reference_lines(scatter_axes, tensor, x)
    _label_parts(scatter_axes, per)


def plot_report(report: Report, tensors: str | Iterable[str] | None = None) -> Any:
    """A `matplotlib.figure.Figure` with one row per tensor: heatmap (with its colour bar) and
    scatter. ``figure.savefig("grad.png")`` saves it; in Jupyter it displays by itself.
    """
    Figure = _matplotlib()
    names = _selection(report, tensors)
    figure = Figure(figsize=(WIDTH, ROW_HEIGHT * len(names)), layout="constrained")
    axes = figure.subplots(len(names), 2, squeeze=False)
    for (heat, scatter), name in zip(axes, names):
        draw_tensor(report.tensors[name], heat, scatter)
    verdict = report.status.upper()
    figure.suptitle(f"gradprobe {verdict}" + (f": {', '.join(report.failing)} wrong" if report.failing else ""))
    return figure


def tensor_png(tensor: TensorReport) -> bytes:
    """One tensor's heatmap and scatter as PNG bytes (for the HTML report)."""
    Figure = _matplotlib()
    figure = Figure(figsize=(WIDTH, ROW_HEIGHT), layout="constrained", dpi=90)
    heat, scatter = figure.subplots(1, 2)
    draw_tensor(tensor, heat, scatter)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
