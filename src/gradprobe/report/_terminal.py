"""Terminal rendering with rich (an optional extra): a coloured verdict, one table of tensors,
the worst elements and a hint under each tensor that did not pass, and the reproduce line.

Colour and tables go only to a terminal; anything else (a pipe, a file, a CI log) gets the plain
text of `_text`, which is also what prints when rich is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Literal

from ._text import HEADER, coverage_lines, element_line, facts, headline, render_text, row, taylor_line, where_line, worst

if TYPE_CHECKING:
    from ._types import Report

Color = Literal["auto", "always", "never"]
STYLES = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _is_terminal(file: IO[str]) -> bool:
    isatty = getattr(file, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def renderables(report: Report, *, reproduce: str | None = None, with_reproduce: bool = True) -> Iterator[Any]:
    """The report as rich renderables (used by ``rich.print(report)`` and `show`)."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    verdict, detail = headline(report)
    title = Text.assemble(("gradprobe ", "bold"), (verdict, STYLES[report.status]), f": {detail}")
    yield title
    yield Padding(Text(facts(report), style="dim"), (0, 0, 0, 2), expand=False)
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False, header_style="bold")
    for name in HEADER:
        numeric = name in ("difference", "resolution")
        table.add_column(name, no_wrap=name != "diagnosis", justify="right" if numeric else "left")
    for tensor in report.tensors.values():
        cells = row(tensor)
        table.add_row(*cells[:2], Text(cells[2], style=STYLES[tensor.status]), *cells[3:])
    yield Padding(table, (0, 0, 0, 2), expand=False)
    for tensor in report.tensors.values():
        if tensor.status == "pass":
            continue
        label = tensor.diagnosis or tensor.reason or tensor.status
        yield Text.assemble(("  " + tensor.name, "bold"), " ", (label, STYLES[tensor.status]))
        if where := where_line(report, tensor):
            yield Text(f"      {where}")
        for element in worst(tensor):
            yield Text(f"      {element_line(tensor, element)}")
        if tensor.hint:
            yield Padding(Text.assemble(("hint: ", "bold"), tensor.hint), (0, 0, 0, 6), expand=False)
        if tensor.taylor_slope is not None:
            yield Text(f"      {taylor_line(tensor)}", style="dim")
    if report.ignored:
        yield Text(f"  ignored gradient entries with no parameter: {', '.join(report.ignored)}", style="dim")
    for line in coverage_lines(report):
        yield Padding(Text(line, style="dim" if report.coverage.complete else "yellow"), (0, 0, 0, 2), expand=False)
    for note in report.notes:
        yield Padding(Text.assemble(("note: ", "yellow"), note), (0, 0, 0, 2), expand=False)
    if with_reproduce:
        yield reproduce_text(report, reproduce)


def reproduce_text(report: Report, reproduce: str | None = None) -> Any:
    from rich.text import Text

    return Text.assemble(("  reproduce: ", "dim"), (reproduce or report.reproduce, "cyan"))


def show(report: Report, file: IO[str] | None = None, *, reproduce: str | None = None, color: Color = "auto") -> None:
    """Print `report` to `file` (stdout): rich tables in colour on a terminal, plain text elsewhere.

    ``color="always"`` forces colour (e.g. for a CI log that renders ANSI codes), ``"never"``
    forces plain text.
    """
    file = sys.stdout if file is None else file
    terminal = color == "always" or (color == "auto" and _is_terminal(file))
    if not terminal or not _rich_available():
        print(render_text(report, reproduce=reproduce), file=file)
        return
    from rich.console import Console, Group

    console = Console(file=file, force_terminal=True, highlight=False, soft_wrap=False)
    console.print(Group(*renderables(report, with_reproduce=False)))
    # Soft-wrapped: one line however wide, so that it pastes as is (a shell command included).
    console.print(reproduce_text(report, reproduce), soft_wrap=True)
