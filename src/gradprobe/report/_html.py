"""HTML rendering: one self-contained page (`Report.to_html`) and a fragment for Jupyter
(`Report._repr_html_`).

The page loads nothing from the network: styles are inline, plots are PNGs in ``data:`` URIs,
there is no script, and a Content-Security-Policy forbids any other fetch, so the file can be
mailed, attached to a CI run or opened offline and looks the same everywhere.
"""

from __future__ import annotations

import base64
import os
from html import escape
from typing import TYPE_CHECKING, Any

from .._errors import InvalidArgument
from ._text import HEADER, coverage_lines, error_bar, facts, headline, pair, row, taylor_line, where_line, worst

if TYPE_CHECKING:
    from ._types import Report, TensorReport

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
.gradprobe-report { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
  background: #fff; max-width: 1100px; line-height: 1.4; padding: 4px 0; }
.gradprobe-report h2 { font-size: 1.3em; margin: 0 0 4px 0; }
.gradprobe-report h3 { font-size: 1.05em; margin: 18px 0 4px 0; }
.gradprobe-report .facts, .gradprobe-report .muted { color: #59636e; font-size: 0.9em; }
.gradprobe-report table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
.gradprobe-report th, .gradprobe-report td { padding: 3px 12px 3px 0; text-align: left;
  border-bottom: 1px solid #d1d9e0; vertical-align: top; }
.gradprobe-report td.num { text-align: right; font-variant-numeric: tabular-nums; }
.gradprobe-report code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.9em; background: #f6f8fa; padding: 1px 4px; border-radius: 3px; }
.gradprobe-report .pass { color: #1a7f37; }
.gradprobe-report .fail { color: #cf222e; }
.gradprobe-report .inconclusive { color: #9a6700; }
.gradprobe-report .hint { border-left: 3px solid #cf222e; padding: 2px 8px; margin: 6px 0; }
.gradprobe-report pre { white-space: pre-wrap; font-family: inherit; margin: 6px 0; }
.gradprobe-report img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
"""


def _status_cell(status: str) -> str:
    text = status.upper() if status == "fail" else status
    return f'<td class="{escape(status)}">{escape(text)}</td>'


def _table(report: Report) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADER)
    body = []
    for tensor in report.tensors.values():
        name, shape, _, difference, resolution, diagnosis = row(tensor)
        body.append(
            f"<tr><td><code>{escape(name)}</code></td><td>{escape(shape)}</td>{_status_cell(tensor.status)}"
            f'<td class="num">{escape(difference)}</td><td class="num">{escape(resolution)}</td>'
            f"<td>{escape(diagnosis)}</td></tr>"
        )
    return f'<table class="tensors"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _worst_table(tensor: TensorReport) -> str:
    rows = []
    for element in worst(tensor):
        bar = error_bar(tensor, element)
        analytic, numeric = (value.strip() for value in pair(element))
        rows.append(
            f"<tr><td><code>{escape(str(element.index))}</code></td>"
            f'<td class="num">{analytic}</td><td class="num">{numeric}</td>'
            f'<td class="num">{"-" if bar is None else f"{bar:.1e}"}</td></tr>'
        )
    if not rows:
        return ""
    return (
        '<table class="worst"><thead><tr><th>index</th><th>analytic</th><th>numerical</th><th>error bar</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _plot(tensor: TensorReport) -> str:
    whole = tensor.analytic is not None and tensor.numeric is not None
    if not whole and not tensor.worst:
        return ""  # nothing was probed element by element: no values to draw
    try:
        from ._plot import tensor_png

        png = tensor_png(tensor)
    except ImportError:
        return '<p class="muted">Install matplotlib for a heatmap and a scatter of this tensor.</p>'
    data = base64.b64encode(png).decode("ascii")
    if whole:
        alt = f"{tensor.name}: heatmap of analytic minus numerical values, and analytic against numerical values"
    else:
        alt = (
            f"{tensor.name}: the elements probed one by one, where they lie in the tensor, and analytic against "
            "numerical values with error bars (wrong ones in red)"
        )
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _tensor_section(tensor: TensorReport, plots: bool, where: str | None) -> str:
    label = tensor.diagnosis or tensor.reason or tensor.status
    parts = [
        f'<h3><code>{escape(tensor.name)}</code> <span class="{escape(tensor.status)}">{escape(label)}</span></h3>',
        *([f'<p class="muted">{escape(where)}</p>'] if where else []),
        _worst_table(tensor),
    ]
    if tensor.hint:
        parts.append(f'<p class="hint">{escape(tensor.hint)}</p>')
    if tensor.taylor_slope is not None:
        parts.append(f'<p class="muted">{escape(taylor_line(tensor))}</p>')
    if plots:
        parts.append(_plot(tensor))
    return f'<section class="tensor">{"".join(parts)}</section>'


def render_fragment(report: Report, *, plots: bool = True, reproduce: str | None = None) -> str:
    """The report as an HTML ``<div>`` with its own scoped style (for notebooks and pages)."""
    verdict, detail = headline(report)
    parts = [
        f"<style>{STYLE}</style>",
        f'<h2 class="verdict" data-status="{escape(report.status)}">gradprobe '
        f'<span class="{escape(report.status)}">{escape(verdict)}</span>: {escape(detail)}</h2>',
        f'<p class="facts">{escape(facts(report))}</p>',
        _table(report),
    ]
    parts.extend(_tensor_section(t, plots, where_line(report, t)) for t in report.tensors.values() if t.status != "pass")
    if report.ignored:
        ignored = escape(", ".join(report.ignored))
        parts.append(f'<p class="muted">Ignored gradient entries with no parameter: {ignored}</p>')
    coverage = coverage_lines(report)
    if coverage:
        parts.append(f'<pre class="muted">{escape(chr(10).join(coverage))}</pre>')
    parts.extend(f'<p class="note">Note: {escape(note)}</p>' for note in report.notes)
    parts.append(f"<p>Reproduce: <code>{escape(reproduce or report.reproduce)}</code></p>")
    return f'<div class="gradprobe-report">{"".join(parts)}</div>'


def render_page(report: Report, *, plots: bool = True, reproduce: str | None = None) -> str:
    """A complete, self-contained HTML document."""
    verdict, detail = headline(report)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gradprobe {escape(verdict)}: {escape(detail)}</title>"
        "<style>body { margin: 24px; background: #fff; }</style></head>\n"
        f"<body>{render_fragment(report, plots=plots, reproduce=reproduce)}</body></html>\n"
    )


def write_html(report: Report, path: Any = None, *, reproduce: str | None = None) -> str:
    """Render the page and, when `path` is given, write it there (UTF-8). Returns the HTML."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(
            f"`path` must be a file path (str or pathlib.Path) or None, got {type(path).__name__}.", argument="path"
        )
    page = render_page(report, reproduce=reproduce)
    if path is not None:
        with open(path, "w", encoding="utf-8") as file:
            file.write(page)
    return page
