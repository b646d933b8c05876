"""The one place a `Report` is assembled, and tensor reports are made from probed elements.

Every strategy ends here: "full" (with or without a budget) and "sample" hand over their
per-element results, "directional" its tensor reports; the report's notes, coverage, options and
noise are filled in the same way for all of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np

from ..estimate import _differences as fd
from ..judge._diagnosis import diagnose, only_at_low_precision
from ..judge._elements import ElementResults
from ..judge._hypotheses import Evidence
from ..judge._verdict import (
    ELEMENT_STATUSES,
    FAIL,
    KINK,
    NOISE,
    overall_status,
    relative_difference,
    resolution,
    safe_norm,
    tensor_status,
)
from ..params._params import Leaf
from ..report._types import Coverage, Element, Finding, Guarantee, Report, TensorReport
from ._complex_elements import complex_arrays, complex_elements, element_codes
from ._context import CheckContext
from ._options import reported_options

#: Elements listed in `TensorReport.worst` (of a failing or inconclusive tensor; one of a passing).
WORST_KEPT = 5


def merged_notes(notes: list[str]) -> tuple[str, ...]:
    """The notes, each said once: notes that differ only in their measured values (the same
    finding in several chunks of a budgeted check) become the one with the largest first value
    (for "the probes show more noise (X) than ...", the largest noise any error bar used), in the
    place of the first. Names and indices (``W1``, ``(17, 3)``) tell notes apart.

    Examples
    --------
    >>> merged_notes(["more noise (1.0e-09) than (1e-12)", "a", "more noise (3.0e-09) than (1e-12)", "a"])
    ('more noise (3.0e-09) than (1e-12)', 'a')
    >>> merged_notes(["W1: no element stands out", "W2: no element stands out"])
    ('W1: no element stands out', 'W2: no element stands out')
    """
    kept: dict[str, tuple[float, str]] = {}
    for note in notes:
        kind = _MEASURED.sub("#", note)
        values = [float(x) for x in _MEASURED.findall(note)]
        size = values[0] if values else -math.inf
        if kind not in kept or size > kept[kind][0]:
            kept[kind] = (size, note)
    return tuple(note for _, note in kept.values())


#: A measured value in a note: a decimal point or an exponent (integers are counts and indices).
_MEASURED = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)")


class Ledger:
    """Where a check's evaluations went, by phase, and what the budget left out."""

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self.phases: dict[str, int] = {"setup": context.nfev}
        self.not_covered: list[str] = []

    def end_phase(self, name: str) -> None:
        """Book the evaluations since the last phase under `name`."""
        spent = self.context.nfev - sum(self.phases.values())
        if spent:
            self.phases[name] = self.phases.get(name, 0) + spent


def worst_elements(context: CheckContext, leaf: Leaf, results: ElementResults, keep: int) -> tuple[Element, ...]:
    """The `keep` elements of `results` with the largest disagreement, worst first, the wrong ones
    (code FAIL) before the rest (an element at a kink can disagree more and still be right), each
    with the error bar it was judged against (the numerical error bar plus the analytic side's
    floor, as `TensorReport.error_bar` holds it for a tensor probed whole)."""
    if leaf.complex:  # one element per complex number, not per part
        ranked = complex_elements(context.analytic, leaf, results)
        order = np.argsort([-gap for gap, _ in ranked], kind="stable")[:keep]
        return tuple(ranked[i][1] for i in order)
    e = results.estimates
    gap = np.where(np.isfinite(e.numeric), np.abs(context.analytic[results.indices] - e.numeric), np.inf)
    order = np.lexsort((-gap, results.codes != FAIL))[:keep]
    bars = e.error + results.floor
    return tuple(
        Element(
            leaf.index(int(results.indices[i])), float(context.analytic[results.indices[i]]), float(e.numeric[i]),
            error_bar=float(bars[i]),
        )  # fmt: skip
        for i in order
    )


def element_counts(results: ElementResults, leaf: Leaf | None = None) -> dict[str, int]:
    """Elements per outcome (a complex `leaf`'s elements, not its parts: `_complex_elements`)."""
    codes = element_codes(leaf, results)[1] if leaf is not None and leaf.complex else results.codes
    return {s: int(np.sum(codes == k)) for k, s in enumerate(ELEMENT_STATUSES)}


def kink_indices(leaf: Leaf, results: ElementResults) -> tuple[tuple[int, ...], ...]:
    # dict.fromkeys: a complex element once, though both its parts sit at the kink
    return tuple(dict.fromkeys(leaf.index(int(i)) for i in results.indices[results.codes == KINK]))


def element_tensor_reports(
    context: CheckContext, results: ElementResults, planned: dict[str, int], not_covered: list[str], *, sampled: bool = False
) -> dict[str, TensorReport]:
    """Tensor reports from per-element results, whatever chose the elements.

    `planned` is how many elements of each tensor the strategy meant to probe; a tensor probed
    less (the budget ran out) cannot pass, and the gap is added to `not_covered`. When every
    coordinate was probed, the judge's whole-gradient rules apply (a tensor the loss does not
    depend on is resolved on the whole gradient's scale); otherwise the probed elements stand in
    for the whole gradient.
    """
    e = results.estimates
    complete = len(results) == context.params.size
    flat = {leaf.name for leaf in context.judge.flat_leaves(e)} if complete else set()
    analytic = context.analytic[results.indices]
    # A tensor whose gradient is tiny next to the others' is judged against the gradient's
    # typical size: missing 10% of almost nothing does not make it inconclusive.
    typical = fd.rms(e.numeric) if np.all(np.isfinite(e.numeric)) else fd.rms(analytic)
    if not complete:  # a tensor is flat as far as its probed elements show
        flat = {leaf.name for leaf in context.user_params.leaves if is_flat(results.within(leaf), typical)}
    return {
        leaf.name: _tensor_report(context, leaf, results.within(leaf), planned[leaf.name], typical, leaf.name in flat,
                                  not_covered, sampled, results)  # fmt: skip
        for leaf in context.user_params.leaves
    }


def is_flat(mine: ElementResults, typical: float) -> bool:
    """Whether a tensor's probed elements are zero within their error bars while the gradient as a
    whole (its typical size `typical`) is not: the loss does not depend on the tensor."""
    e = mine.estimates
    with np.errstate(invalid="ignore"):
        return len(mine) > 0 and bool(np.all(np.abs(e.numeric) <= e.error)) and fd.rms(e.numeric) < typical


def evidence(context: CheckContext, leaf: Leaf, mine: ElementResults, everything: ElementResults | None) -> Evidence:
    """What layout hypotheses about `leaf` are tested on: its probed elements `mine` and, for a
    gradient returned in the wrong place, the same elements of its same-shape siblings, where
    `everything` probed has them."""
    positions = mine.indices - leaf.offset
    others = {}
    for other in context.user_params.leaves if everything is not None else ():
        if other is leaf or other.shape != leaf.shape:
            continue
        theirs = everything.within(other)
        at = np.searchsorted(theirs.indices, other.offset + positions)
        if np.all(at < len(theirs)) and np.array_equal(theirs.indices[np.minimum(at, len(theirs) - 1)], other.offset + positions):
            e = theirs.estimates
            others[other.name] = (e.numeric[at], 2 * e.error[at] + theirs.floor[at])
    return Evidence(leaf.shape, context.analytic[leaf.slice], positions, others)


def leaf_report(
    context: CheckContext, leaf: Leaf, results: ElementResults, not_covered: list[str], *, sampled: bool = False,
    everything: ElementResults | None = None,
) -> TensorReport:
    """One tensor's report from its elements probed one by one: every element (a localization that
    reached them all), judged as `element_tensor_reports` judges a tensor, resolution included; or
    (`sampled`) a random sample of them, judged as strategy="sample" judges one. `everything`
    probed so far (other tensors' elements too) tells whether its gradient is another's."""
    # The whole gradient's typical size, as a full check judges every tensor against: the analytic
    # gradient stands in for the numerical one, known here for this tensor only. A tensor whose
    # gradient is zero (a gate at its kink) is then no "zero gradient" that passes at any resolution.
    typical = fd.rms(context.analytic)
    planned = len(results) if sampled else leaf.size
    return _tensor_report(
        context, leaf, results, planned, typical, is_flat(results, typical), not_covered, sampled, everything
    )


def _tensor_report(
    context: CheckContext, leaf: Leaf, mine: ElementResults, planned: int, typical: float, flat: bool,
    not_covered: list[str], sampled: bool, everything: ElementResults | None = None,
) -> TensorReport:  # fmt: skip
    probed = len(mine)
    if probed < planned:
        # counted in elements: a complex one's two parts are one
        done, of = (len(leaf.elements(mine.indices - leaf.offset)), planned // 2) if leaf.complex else (probed, planned)
        not_covered.append(f"{leaf.name}: {done} of {of} elements checked" if probed else f"{leaf.name}: not checked")
    if not probed:
        return TensorReport(
            name=leaf.name, shape=leaf.tensor_shape, status="inconclusive", difference=0.0, resolution=math.inf,
            reason="budget", probes=0, coverage=0.0,
        )  # fmt: skip
    judge = context.judge
    if flat:
        # Judged on the whole gradient's scale, as `ElementJudge.codes` judges it once every
        # coordinate is probed (elements probed apart from the rest were judged on their own).
        mine = judge.as_flat(mine, typical)
    e, codes, floor = mine.estimates, mine.codes, mine.floor
    a, n, err = context.analytic[mine.indices], e.numeric, e.error
    bound = judge.undetectable(e, codes, floor, mine.indices)
    tensor_resolution = resolution(bound, n, safe_norm(a))
    # An element the differences could not judge at all (still rough at its finest step) may be
    # wrong by its whole disagreement: no leniency of the whole gradient's scale covers that.
    unjudged = bool(np.any((codes == NOISE) & e.is_rough)) and not flat
    judged = tensor_resolution if typical == 0 or unjudged else min(tensor_resolution, resolution(bound, np.full(probed, typical), 0.0))
    if flat:
        # Zero within its error bars: its resolution means something only on the whole gradient's scale.
        tensor_resolution = judged
    kink_free = judge.undetectable(replace(e, jump=None), codes, floor, mine.indices)
    kink_free_judged = min(resolution(kink_free, n, safe_norm(a)), resolution(kink_free, np.full(probed, typical or 1.0), 0.0))
    status, reason = tensor_status(codes, judged, zero=not (np.any(a) or np.any(n) or typical), kink_free=kink_free_judged)
    if probed < planned and status == "pass":
        status, reason = "inconclusive", "budget"
    whole = probed == leaf.size
    diagnosis = slope = None
    if status != "pass" and reason != "budget":
        diagnosis = diagnose(
            leaf.name, leaf.shape, a, n, err, floor, codes, context.options.batch_size,
            positions=mine.indices - leaf.offset, reason=reason, tensor_resolution=tensor_resolution,
            ragged=leaf.name in judge.ragged_tensors, repeat_spread=context.noise.repeat_spread,
            evidence=evidence(context, leaf, mine, everything), pairs=leaf.complex, dtype=leaf.dtype,
        )  # fmt: skip
    if status == "fail":
        slope = context.taylor_slope(a - n, mine.indices)
        if diagnosis is not None and not whole:  # what the elements probed say, not all of the tensor's
            diagnosis = replace(diagnosis, finding=replace(diagnosis.finding, scope="probed"))
        if diagnosis is not None and context.precise is not None and leaf.dtype != np.float64:
            wrong = codes == FAIL
            with np.errstate(invalid="ignore"):
                agrees = bool(np.all(np.abs(context.precise[mine.indices][wrong] - n[wrong]) <= (err + floor)[wrong]))
            computed_in = str(np.dtype(context.low_precision.computed_in)) if context.low_precision else str(leaf.dtype)
            diagnosis = only_at_low_precision(diagnosis, computed_in, agrees)
    worst = worst_elements(context, leaf, mine, WORST_KEPT)
    arrays: tuple[np.ndarray | None, ...] = (None, None, None)  # every element's values, when every one was probed
    if whole:
        arrays = complex_arrays(leaf, a, n, err + floor) if leaf.complex else tuple(v.reshape(leaf.shape) for v in (a, n, err + floor))
    return TensorReport(
        name=leaf.name,
        shape=leaf.tensor_shape,
        status=status,  # type: ignore[arg-type]
        # A flat tensor's two sides are rounding residue: their difference, like its resolution, is
        # measured on the whole gradient's scale (relative to each other they differ by ~100%).
        difference=relative_difference(a, n) if not flat else flat_difference(a, n, typical),
        resolution=tensor_resolution,
        finding=diagnosis.finding if diagnosis else None,
        worst=worst if status != "pass" else worst[:1],
        reason=reason,
        kinks=kink_indices(leaf, mine),
        counts=element_counts(mine, leaf),
        taylor_slope=slope,
        probes=len(leaf.elements(mine.indices - leaf.offset)) if sampled else 0,
        coverage=probed / leaf.size,
        analytic=arrays[0],
        numeric=arrays[1],
        error_bar=arrays[2],
    )


def flat_difference(analytic: np.ndarray, numeric: np.ndarray, typical: float) -> float:
    """The seed's measure with the whole gradient's typical size over as many elements as a floor
    for its denominator: ``||a - n|| / max(||a|| + ||n||, typical sqrt(len))``."""
    floor = typical * np.sqrt(len(analytic))
    with np.errstate(over="ignore", invalid="ignore"):
        denominator = max(safe_norm(analytic) + safe_norm(numeric), floor)
        return float(safe_norm(analytic - numeric) / denominator) if denominator > 0 else 0.0


def elements_summary(context: CheckContext, results: ElementResults) -> tuple[float, float]:
    """The report's `difference` and `resolution` over every probed element."""
    if not len(results):
        return 0.0, math.inf
    e = results.estimates
    analytic = context.analytic[results.indices]
    bound = context.judge.undetectable(e, results.codes, results.floor, results.indices)
    return relative_difference(analytic, e.numeric), resolution(bound, e.numeric, safe_norm(analytic))


def assemble_report(
    context: CheckContext,
    *,
    strategy: str,
    tensors: dict[str, TensorReport],
    difference: float,
    resolution: float,
    ignored: tuple[str, ...],
    evaluations: dict[str, int],
    not_covered: list[str],
    guarantee: Guarantee | None = None,
) -> Report:
    """The report of a check, from its tensor reports and what it spent."""
    budget = context.options.budget
    outside = context.objective.domain.note()  # raises if the loss raised at every probe point
    return Report(
        status=overall_status([t.status for t in tensors.values()]),  # type: ignore[arg-type]
        difference=difference,
        resolution=resolution,
        nfev=context.nfev,
        tensors=tensors,
        ignored=ignored,
        notes=merged_notes([*context.notes, *([outside] if outside else [])]),
        method="forward" if context.oracle is not None else context.options.method,
        strategy=strategy,
        seed=context.options.seed,
        noise=context.noise.sigma,
        reference=context.reference,
        options=reported_options(context.options),
        coverage=Coverage(
            complete=not not_covered,
            budget=str(budget) if budget.bounded else None,
            not_covered=tuple(not_covered),
            evaluations=evaluations,
        ),
        guarantee=guarantee,
    )


def undecidable(report: Report, ragged: tuple[str, ...]) -> Report:
    """Tensors along which the loss has no derivative at this precision (`NoiseModel.ragged_tensors`)
    decide nothing, whatever a randomized strategy's probes happened to say."""
    tensors = {
        name: tensor if name not in ragged else replace(
            tensor, status="inconclusive", reason="noise", resolution=float("inf"),
            finding=Finding("no_derivative"),
        )  # fmt: skip
        for name, tensor in report.tensors.items()
    }
    status = overall_status([t.status for t in tensors.values()])
    return replace(report, status=status, resolution=float("inf"), tensors=tensors)
