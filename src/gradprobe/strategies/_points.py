"""``points=k``: the check at the user's point and at k - 1 random points near it, as one report.

A zero bias, identical rows or a symmetric matrix can make a wrong gradient right at one point (a
term multiplied by the zero bias, a transpose of a symmetric gradient); at a random point nearby
the bug shows. Each point gets the whole check and an equal share of the budget; the report is
their union, and each point's own report stays in `Report.points`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .._errors import InvalidValue, UserFunctionError
from ..estimate._nearby import POINTS_MOVE, nearby_point
from ..estimate._objective import Objective
from ..judge._verdict import overall_status
from ..params._params import Params
from ..report._types import Coverage, Report, TensorReport
from ._analytic import analytic_gradient
from ._options import Options

#: Order of badness when the points disagree: a tensor shows the worst point's report.
_RANK = {"pass": 0, "inconclusive": 1, "fail": 2}


def check_at_points(
    check_here: Callable[[Params, Options], Report],
    loss: Callable[[Any], Any],
    grad: Callable[[Any], Any],
    user_params: Params,
    options: Options,
) -> Report:
    """`check_here` at the user's point and at ``options.points - 1`` nearby ones, as one report."""
    if options.points == 1:
        return check_here(user_params, options)
    reports = [check_here(user_params, _one_share(options))]
    for draw in range(1, options.points):
        point = Params(nearby_point(user_params, options.seed, POINTS_MOVE, draw))
        if (error := _undefined_at(loss, grad, point, options)) is not None:
            reports.append(_not_checked(reports[0], point, error))
            continue
        report = check_here(point, _one_share(options))
        reports.append(replace(report, nfev=report.nfev + 1))  # and the loss `_undefined_at` took
    return _union(reports, options)


def _one_share(options: Options) -> Options:
    """The options of one point: its share of the budget, whose clock starts now."""
    return replace(options, budget=options.budget.share(options.points))


def _undefined_at(
    loss: Callable[[Any], Any], grad: Callable[[Any], Any], point: Params, options: Options
) -> Exception | None:
    """Why the loss or the gradient cannot be evaluated at a drawn point (outside the function's
    domain: NaN, inf, an exception), or None. Costs one loss evaluation. Found here, before the
    check, so that a failure later in it still raises, as at the user's point."""
    try:
        Objective(loss, point, vectorized=options.vectorized).initial()
        analytic_gradient(grad, point)
    except (InvalidValue, UserFunctionError) as error:
        return error
    return None


def _not_checked(yours: Report, point: Params, error: Exception) -> Report:
    """The report of a drawn point where the function cannot be evaluated: every tensor
    inconclusive (reason "nonfinite"), and why in a note."""
    tensors = {
        leaf.name: TensorReport(leaf.name, leaf.tensor_shape, "inconclusive", math.nan, math.inf, reason="nonfinite")
        for leaf in point.leaves
    }
    note = (
        "nothing was checked at this point: the function cannot be evaluated there (outside its domain?): "
        f"{str(error).splitlines()[0]} Check with points=1, or from a point farther inside the domain."
    )
    return Report(
        "inconclusive", math.nan, math.inf, 1, tensors, notes=(note,), method=yours.method, strategy=yours.strategy,
        seed=yours.seed, reference=yours.reference, options=yours.options,
    )  # fmt: skip


def _union(reports: list[Report], options: Options) -> Report:
    """One report of all points: the worst of each, said of the point it comes from."""
    yours, k = reports[0], len(reports)
    # The first point where each tensor did worst (`max` keeps the first of equals).
    tensors = {name: max((r.tensors[name] for r in reports), key=lambda t: _RANK[t.status]) for name in yours.tensors}
    move = (
        f"checked at {k} points: yours, and {k - 1} random nearby (seed {options.seed}) where every parameter x is "
        f"moved by u * {POINTS_MOVE:g} * s, u uniform in [-1, 1], s = max(|x|, the RMS of its tensor) (for a tensor "
        "of zeros: the RMS of all parameters, at most 1), and a nonzero x at most half-way to zero. Each point's "
        "report is in `report.points`; a tensor shows the point where it did worst."
    )
    notes = [move, *yours.notes]
    for i, report in enumerate(reports[1:], start=2):
        notes.extend(f"at point {i} of {k} (nearby, not yours): {note}" for note in report.notes if note not in yours.notes)
    differences = [r.difference for r in reports if not math.isnan(r.difference)]
    return replace(
        yours,
        status=overall_status([r.status for r in reports]),
        difference=max(differences, default=math.nan),
        resolution=max(r.resolution for r in reports),
        nfev=sum(r.nfev for r in reports),
        tensors=tensors,
        notes=tuple(notes),
        coverage=_coverage(reports, options),
        points=tuple(reports),
    )


def _coverage(reports: list[Report], options: Options) -> Coverage:
    """Every point's coverage: complete when each is, its gaps named by point, evaluations summed."""
    k = len(reports)
    gaps = [f"point {i} of {k}: {gap}" for i, r in enumerate(reports, start=1) for gap in r.coverage.not_covered]
    evaluations: dict[str, int] = {}
    for report in reports:
        for phase, count in report.coverage.evaluations.items():
            evaluations[phase] = evaluations.get(phase, 0) + count
    budget = str(options.budget) if options.budget.bounded else None
    return Coverage(all(r.coverage.complete for r in reports), budget, tuple(gaps), evaluations)
