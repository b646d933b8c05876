"""Plain-text rendering of a `Report`, and the pieces every renderer shares.

One row per tensor (status, difference, resolution, diagnosis), the worst elements and a hint
under the ones that did not pass, and a line that reproduces the check. `_terminal` (rich) and
`_html` lay out the same pieces.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._types import Element, Guarantee, Report, TensorReport

WORST_SHOWN = 3
HEADER = ("tensor", "shape", "status", "difference", "resolution", "diagnosis")


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def size(tensor: TensorReport) -> int:
    return math.prod(tensor.shape)


def headline(report: Report) -> tuple[str, str]:
    """The verdict ("FAIL") and what it is about ("2 of 6 tensors wrong (b1, W2)")."""
    if report.status == "fail":
        detail = f"{len(report.failing)} of {len(report.tensors)} tensors wrong ({', '.join(report.failing)})"
    elif report.status == "inconclusive":
        unsure = [t.name for t in report.tensors.values() if t.status == "inconclusive"]
        detail = f"could not decide {', '.join(unsure)}"
    elif report.resolution == float("inf") and (bound := _zero_bound(report)) is not None:
        # A gradient that is zero on both sides has no size to be relative to: say how close to zero.
        detail = f"the gradient is zero, and so is the numerical one to within {bound:.1e} (absolute)"
    elif report.strategy == "sample" and report.guarantee is not None and report.guarantee.resolution > 0:
        # A sample resolves a fraction of wrong elements, not an error size (see the guarantee line).
        detail = f"no wrong element among those sampled (a fraction >= {report.guarantee.resolution:.1%} wrong is caught)"
    else:
        detail = f"gradient correct to within {report.resolution:.1e} (relative)"
    return report.status.upper(), detail


def _zero_bound(report: Report) -> float | None:
    """For a gradient that is zero on both sides, the largest element's error bar (None when the
    bars are not known, or the gradient is not zero)."""
    bars = []
    for tensor in report.tensors.values():
        if tensor.analytic is None or tensor.numeric is None or tensor.error_bar is None:
            return None
        if tensor.analytic.any() or tensor.numeric.any():
            return None
        bars.append(float(tensor.error_bar.max(initial=0.0)))
    return max(bars, default=None)


def facts(report: Report) -> str:
    n = sum(size(t) for t in report.tensors.values())
    strategy = f"strategy {report.strategy}, " if report.strategy != "full" else ""
    reference = f"reference {report.reference}, " if report.reference == "float64" else ""
    points = f"{len(report.points)} points, " if report.points else ""
    # Which derivative the verdicts are about, when it is not the backward's gradient.
    derivative = f"order {report.order}, " if report.order > 1 else "mode forward (jvp), " if report.mode == "forward" else ""
    return (
        f"{n} parameter{'' if n == 1 else 's'}, {points}{report.nfev} loss evaluations, {derivative}{strategy}method {report.method}, "
        f"{reference}resolution {report.resolution:.1e}, difference {report.difference:.3e}"
    )


def found(report: Report, inconclusive: str | None = None) -> str:
    """A check's verdict in a few words: "PASS (resolution 1.0e-09)", "FAIL: W1 2.00x"."""
    if report.status == "pass":
        return f"PASS (resolution {report.resolution:.1e})"
    tensors = report.tensors.values()
    if report.status == "fail":
        return "FAIL: " + ", ".join(f"{t.name} {t.diagnosis or 'wrong'}" for t in tensors if t.status == "fail")
    unsure = ", ".join(f"{t.name} ({t.diagnosis or t.reason})" for t in tensors if t.status == "inconclusive")
    return inconclusive or f"inconclusive: {unsure}"


def nearby_line(report: Report) -> str | None:
    """What the check at a nearby point found, said as evidence about the code, not about the
    user's point."""
    if report.nearby is None:
        return None
    return f"at the nearby point (not yours): {found(report.nearby, 'inconclusive there too')}"


def whose(point: int) -> str:
    """Point 1 of a ``points=k`` check is the user's; the others were drawn near it."""
    return "yours" if point == 1 else "nearby, not yours"


def point_lines(report: Report) -> list[str]:
    """One line per point of a ``points=k`` check: what the check found there."""
    k = len(report.points)
    return [f"point {i} of {k} ({whose(i)}): {found(point)}" for i, point in enumerate(report.points, start=1)]


def where_line(report: Report, tensor: TensorReport) -> str | None:
    """Under a tensor of a ``points=k`` check that did not pass: at which points it has its status,
    and which point its values come from (the first of them)."""
    if not report.points or tensor.status == "pass":
        return None
    at = [i for i, point in enumerate(report.points, start=1) if point.tensors[tensor.name].status == tensor.status]
    status = tensor.status.upper() if tensor.status == "fail" else tensor.status
    line = f"{status} at point{'s' if len(at) > 1 else ''} {', '.join(map(str, at))} of {len(report.points)}"
    if at[0] == 1:
        return line + " (1 is yours)" if len(at) > 1 else line + " (yours)"
    return line + f" (nearby, not yours; {report.points[0].tensors[tensor.name].status} at yours); shown: point {at[0]}"


def coverage_lines(report: Report) -> list[str]:
    """The guarantee of a randomized check, what a budget left out, the nearby check and the
    points of a ``points=k`` check."""
    lines = [line] if (line := nearby_line(report)) else []
    lines.extend(point_lines(report))
    if report.guarantee is not None:
        lines.append(f"guarantee: {report.guarantee}")
    if not report.coverage.complete:
        lines.append(f"budget of {report.coverage.budget} reached; not covered:")
        lines.extend(f"  {gap}" for gap in report.coverage.not_covered)
    return lines


def row(tensor: TensorReport) -> list[str]:
    """The table cells of one tensor, in `HEADER` order."""
    status = tensor.status.upper() if tensor.status == "fail" else tensor.status
    note = tensor.diagnosis or (f"({tensor.reason})" if tensor.reason else "")
    if tensor.kinks and tensor.status != "fail" and "kink" not in note:
        note = (note + ", " if note else "") + f"{len(tensor.kinks)} at kinks"
    return [tensor.name, str(tensor.shape), status, number(tensor.difference), number(tensor.resolution), note]


#: A Taylor remainder slope at least this close to 2 reads as a right gradient.
READS_RIGHT = 1.5


def taylor_line(tensor: TensorReport) -> str:
    """The Taylor test's line; under a FAIL whose slope reads right, why that is no contradiction."""
    line = f"Taylor remainder slope {tensor.taylor_slope:.2f} (2 = right, 1 = wrong)"
    if tensor.status == "fail" and tensor.taylor_slope is not None and tensor.taylor_slope >= READS_RIGHT:
        finding = tensor.finding
        if finding is not None and finding.against:
            # This test compares the gradient with the loss; the FAIL compared it with the user's own rules.
            line += f": the gradient agrees with the loss here, so your {finding.against} rules are the likelier culprit"
        else:
            line += ": the error is too small for this test to show; the element-wise comparison found it"
    return line


def worst(tensor: TensorReport) -> list[Element]:
    """The elements to show under a tensor: its worst few, only when it did not pass."""
    return list(tensor.worst[:WORST_SHOWN]) if tensor.status != "pass" else []


def error_bar(tensor: TensorReport, element: Element) -> float | None:
    """The element's error bar: its own (every strategy fills it), else the tensor's array (for an
    `Element` built with none), else None."""
    if element.error_bar is not None:
        return float(element.error_bar)
    if tensor.error_bar is None:
        return None
    try:
        return float(tensor.error_bar[element.index])
    except (IndexError, TypeError):
        return None


#: Significant digits of an element's values: at least this many, more where they differ later.
MIN_DIGITS, MAX_DIGITS = 7, 17


def digits(analytic: float, numeric: float) -> int:
    """Significant digits that show where `analytic` and `numeric` part (7 to 17).

    Examples
    --------
    >>> digits(2.0, 1.0), digits(1.0, 1.0 + 1.5e-8), digits(1.0, 1.0)
    (7, 10, 7)
    """
    size = max(abs(analytic), abs(numeric))
    gap = abs(analytic - numeric)
    if not (math.isfinite(size) and math.isfinite(gap)) or gap == 0 or size == 0:
        return MIN_DIGITS
    # The first digit at which they differ, and one more to read the difference by.
    return max(MIN_DIGITS, min(MAX_DIGITS, math.ceil(math.log10(size / gap)) + 2))


def pair(element: Element) -> tuple[str, str]:
    """The element's analytic and numerical values, with enough digits to see them differ."""
    places = digits(element.analytic, element.numeric) - 1
    return f"{element.analytic: .{places}e}", f"{element.numeric: .{places}e}"


def element_line(tensor: TensorReport, element: Element) -> str:
    bar = error_bar(tensor, element)
    plus_minus = f" ± {bar:.1e}" if bar is not None and math.isfinite(bar) else ""
    analytic, numeric = pair(element)
    return f"at {element.index}: analytic {analytic}  numeric {numeric}{plus_minus}"


def reproduce_line(report: Report) -> str:
    """``gp.check(loss, grad, params, ...)`` with the options that reproduce `report`.

    Examples
    --------
    >>> import numpy as np, gradprobe as gp
    >>> report = gp.check(lambda p: np.sum(p**2), lambda p: 2 * p, np.ones(2), seed=7)
    >>> report.reproduce
    "gp.check(loss, grad, params, strategy='full', method='richardson', seed=7)"
    """
    if isinstance(report.options.get("reproduce"), str):
        return report.options["reproduce"]  # written by the entry point that ran (gp.torch.check...)
    arguments = [f"strategy={report.strategy!r}", f"method={report.method!r}", f"seed={report.seed!r}"]
    for key, value in report.options.items():
        # The options hold only what differs from `check`'s defaults (`reported_options`); objects
        # such as an executor cannot be written down and do not change the result.
        if value is None or isinstance(value, (bool, int, float, str)):
            arguments.append(f"{key}={value!r}")
    return f"gp.check(loss, grad, params, {', '.join(arguments)})"


def describe_guarantee(guarantee: Guarantee) -> str:
    """The guarantee in one sentence (`str(guarantee)`)."""
    decided = [name for name in guarantee.probes if name not in guarantee.undecided]
    if not decided:
        return "none: no tensor was decided, so no error size is claimed to be caught"
    counts = sorted({guarantee.probes[name] for name in decided})
    per = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    miss = f"1 - {1 - guarantee.confidence:.0e}"
    which = "any tensor"
    if guarantee.undecided:
        which = f"any tensor but {', '.join(guarantee.undecided)} (undecided: no claim for them)"
    if guarantee.kind == "sample":
        whole = f"{', '.join(guarantee.exact)} checked element by element" if guarantee.exact else ""
        sampled = [name for name in decided if name not in guarantee.exact]
        if not sampled:
            return f"every element checked ({whole}), no sampling"
        counts = sorted({guarantee.probes[name] for name in sampled})
        per = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        which = ", ".join(sampled) if guarantee.exact else which
        return (
            f"if at least {guarantee.resolution:.1%} of the elements of {which} were wrong, the sample would have "
            f"caught it with probability >= {miss} ({per} sampled elements per tensor{'; ' + whole if whole else ''})"
        )
    exact = f"; {', '.join(guarantee.exact)} checked element by element" if guarantee.exact else ""
    return (
        f"a gradient error of relative size >= {guarantee.resolution:.1e} in {which} is caught with probability "
        f">= {miss} ({per} random direction{'s' if counts[-1] > 1 else ''} per tensor{exact})"
    )


def render_text(report: Report, *, reproduce: str | None = None) -> str:
    """The report as plain text (no colour); `reproduce` replaces the reproduce line."""
    rows = [row(t) for t in report.tensors.values()]
    widths = [max(len(r[i]) for r in [list(HEADER), *rows]) for i in range(len(HEADER))]

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    verdict, detail = headline(report)
    lines = [f"gradprobe {verdict}: {detail}", f"  {facts(report)}", line(list(HEADER))]
    for tensor, cells in zip(report.tensors.values(), rows):
        lines.append(line(cells))
        if where := where_line(report, tensor):
            lines.append(f"      {where}")
        lines.extend(f"      {element_line(tensor, element)}" for element in worst(tensor))
        if tensor.status != "pass" and tensor.hint:
            lines.append(f"      hint: {tensor.hint}")
        if tensor.taylor_slope is not None:
            lines.append(f"      {taylor_line(tensor)}")
    if report.ignored:
        lines.append(f"  ignored gradient entries with no parameter: {', '.join(report.ignored)}")
    lines.extend(f"  {line}" for line in coverage_lines(report))
    lines.extend(f"  note: {note}" for note in report.notes)
    lines.append(f"  reproduce: {reproduce or report.reproduce}")
    return "\n".join(lines)
