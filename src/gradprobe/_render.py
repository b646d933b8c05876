"""Plain-text rendering of a `Report`: one row per tensor, worst elements under failing ones."""

from __future__ import annotations

from ._report import Report, TensorReport

WORST_SHOWN = 3


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _headline(report: Report) -> str:
    n = sum(_size(t) for t in report.tensors.values())
    verdict = report.status.upper()
    if report.status == "fail":
        detail = f"{len(report.failing)} of {len(report.tensors)} tensors wrong ({', '.join(report.failing)})"
    elif report.status == "inconclusive":
        unsure = [t.name for t in report.tensors.values() if t.status == "inconclusive"]
        detail = f"could not decide {', '.join(unsure)}"
    else:
        detail = f"gradient correct to within {report.resolution:.1e} (relative)"
    return (
        f"gradprobe {verdict}: {detail}\n"
        f"  {n} parameters, {report.nfev} loss evaluations, method {report.method}, "
        f"resolution {report.resolution:.1e}, difference {report.difference:.3e}"
    )


def _size(tensor: TensorReport) -> int:
    size = 1
    for dim in tensor.shape:
        size *= dim
    return size


def _row(tensor: TensorReport) -> list[str]:
    status = tensor.status.upper() if tensor.status == "fail" else tensor.status
    note = tensor.diagnosis or (f"({tensor.reason})" if tensor.reason else "")
    if tensor.kinks and tensor.status != "fail":
        note = (note + " " if note else "") + f"{len(tensor.kinks)} at kinks"
    return [tensor.name, str(tensor.shape), status, _number(tensor.difference), _number(tensor.resolution), note]


def render_text(report: Report) -> str:
    header = ["tensor", "shape", "status", "difference", "resolution", "diagnosis"]
    rows = [_row(t) for t in report.tensors.values()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [_headline(report), line(header)]
    for tensor, row in zip(report.tensors.values(), rows):
        lines.append(line(row))
        if tensor.status != "pass" and tensor.worst:
            for element in tensor.worst[:WORST_SHOWN]:
                lines.append(
                    f"      at {element.index}: analytic {element.analytic: .6e}  numeric {element.numeric: .6e}"
                )
        if tensor.status == "fail" and tensor.hint:
            lines.append(f"      hint: {tensor.hint}")
        if tensor.taylor_slope is not None:
            lines.append(f"      Taylor remainder slope {tensor.taylor_slope:.2f} (2 = right, 1 = wrong)")
    if report.ignored:
        lines.append(f"  ignored gradient entries with no parameter: {', '.join(report.ignored)}")
    lines.extend(f"  note: {note}" for note in report.notes)
    return "\n".join(lines)
