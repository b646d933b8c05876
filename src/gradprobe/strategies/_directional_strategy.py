"""The directional strategy: random directions give every tensor a verdict with a stated
detection guarantee in a few evaluations: first one direction through all tensors, then
directions restricted to the tensors that need them; a failing tensor is then bisected down to
its wrong elements (`_localize`), or reported wrong throughout with a sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..estimate import _differences as fd
from ..judge._diagnosis import Diagnosis, diagnose, elements, lines_holding, lines_text
from ..judge._elements import ElementResults
from ..judge._guarantee import resolution_at
from ..judge._verdict import FAIL, PASS, UNRESOLVED, relative_difference
from ..params._params import Leaf
from ..report._types import Finding, Guarantee, Report, TensorReport
from ._analytic import LowPrecision
from ._context import CheckContext
from ._coordinates import CHUNK, CoordinateProber
from ._cost import per_element_cost
from ._direction_probes import (
    CONFIRM,
    HYPOTHESIS,
    LOCALIZE,
    MAX_AUTO_PROBES,
    RESOLUTION_GOAL,
    SAMPLE,
    TENSOR,
    VERDICT,
    DirectionalProber,
    keyed_rng,
    probe_codes_status,
)
from ._localize import MAX_FRONTIER, localize
from ._options import Options
from ._report_builder import (
    WORST_KEPT,
    Ledger,
    assemble_report,
    element_counts,
    evidence,
    is_flat,
    kink_indices,
    leaf_report,
    worst_elements,
)

#: Tensors of the same shape tried, nearest first, as the one whose gradient a failing tensor's is.
SWAP_CANDIDATES = 4
#: Located elements listed in `TensorReport.worst` (all of them, up to localization's own cap).
LOCATED_KEPT = MAX_FRONTIER
#: Without a budget, the coordinate probes of tensors that random directions left undecided may
#: spend up to this many times the evaluations the verdict took (`_escalate`).
ESCALATION_FACTOR = 10
#: Elements of an undecided tensor too large to probe whole that are probed one by one: enough to
#: catch a tensor wrong throughout (e.g. a missing factor), never enough to pass it.
ESCALATION_SAMPLE = 32


class _Run:
    """What the directional strategy's steps share: the check, its ledger, the coordinate prober."""

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self.options = context.options
        self.budget = context.options.budget
        if self.options.method == "complex":
            context.estimator.require_complex_support(context.rng)
        self.ledger = Ledger(context)
        self.not_covered = self.ledger.not_covered
        self.coordinates = CoordinateProber(context)

    @property
    def nfev(self) -> int:
        return self.context.objective.nfev

    def affords(self, evaluations: int) -> bool:
        return self.context.affords(evaluations)

    def describe(self, text: str) -> None:
        self.context.progress.describe(text)

    def taylor_slope(self, results: ElementResults) -> float | None:
        """The Taylor-remainder slope along the error at the elements known to be wrong."""
        wrong = results.codes == FAIL
        if not np.any(wrong):
            return None
        # Along the wrong elements only (the rest of the direction is zero): the same points.
        # (An element both located and sampled counts once.)
        positions, first = np.unique(results.indices[wrong], return_index=True)
        direction = self.context.analytic[positions] - results.estimates.numeric[wrong][first]
        return self.context.taylor_slope(direction, positions)


@dataclass(frozen=True)
class _Evidence:
    """What one random direction says about one tensor (`joint`: it moved every tensor)."""

    code: int
    threshold: float
    analytic: float
    numeric: float
    joint: bool

    @property
    def counts(self) -> bool:
        """A direction through every tensor that fails does not say which one is wrong."""
        return not (self.joint and self.code != PASS)


def run_directional(context: CheckContext, ignored: tuple[str, ...]) -> Report:
    """First one random direction through every tensor at once (each tensor moved like one of its
    coordinate steps): a pass there is a pass for every tensor, with a guarantee per tensor. Tensors
    it leaves short of the resolution goal, and every tensor when it fails, get directions restricted
    to them; failing tensors are then localized."""
    run = _Run(context)
    options = run.options
    prober = DirectionalProber(context, affords=run.affords)
    leaves = context.user_params.leaves
    ranges = [(leaf.offset, leaf.offset + leaf.size) for leaf in leaves]
    per_probe = 1 if options.method == "complex" else len(fd.OFFSETS)
    evidence: list[list[_Evidence]] = [[] for _ in leaves]
    joint = len(leaves) > 1
    cut: set[int] = set()

    run.describe("a random direction through every tensor")
    for round_ in range(options.probes or 1):
        if not run.affords(per_probe):
            cut.update(range(len(leaves)))
            break
        [probe] = prober.probe([(0, context.params.size)], VERDICT, round_)
        for i in range(len(leaves)):
            evidence[i].append(_Evidence(probe.code, probe.thresholds[i], probe.analytic, probe.numeric, joint))
        if probe.code != PASS:
            break

    # Directions restricted to one tensor: for every tensor when the joint direction did not pass,
    # else for the tensors it resolved too coarsely.
    if joint and any(e.code == FAIL for e in evidence[0]):
        run.ledger.end_phase("verdict")  # the gradient is wrong: finding which tensor is localization
    rounds = options.probes or MAX_AUTO_PROBES
    active = [i for i in range(len(leaves)) if i not in cut and _wants_another(evidence[i], options, rounds)]
    for round_ in range(rounds):
        if not active:
            break
        fits = len(active)
        remaining = run.budget.remaining(run.nfev)
        if remaining is not None:
            fits = min(fits, remaining // per_probe)
        if not run.affords(0):
            fits = 0
        cut.update(active[fits:])
        active = active[:fits]
        if not active:
            break
        run.describe(f"random directions in {_names(leaves, active)}")
        for i, result in zip(active, prober.probe([ranges[i] for i in active], TENSOR, round_)):
            evidence[i].append(_Evidence(result.code, result.threshold, result.analytic, result.numeric, False))
        active = [i for i in active if _wants_another(evidence[i], options, rounds)]
    run.ledger.end_phase("localization" if "verdict" in run.ledger.phases else "verdict")

    tensors: dict[str, TensorReport] = {}
    thresholds: dict[str, tuple[float, ...]] = {}
    rounding: dict[str, float] = {}
    for i, leaf in enumerate(leaves):
        run.describe(f"judging {leaf.name}")
        usable = [e for e in evidence[i] if e.counts]
        conclusive = tuple(e.threshold for e in usable if e.code in (PASS, FAIL))
        thresholds[leaf.name] = conclusive
        status, reason = probe_codes_status([e.code for e in usable])
        tensor_resolution = resolution_at(conclusive, options.confidence)
        if context.low_precision is not None:
            rounding[leaf.name] = _rounding_limit(context.low_precision, leaf)
            tensor_resolution = max(tensor_resolution, rounding[leaf.name])
        status, reason = _resolved(prober, i, status, reason, tensor_resolution)
        judged, flat_scale = prober.judged_resolution(i, tensor_resolution), 1.0
        zeros_passed = prober.all_zero(i) and status != "fail"
        if math.isfinite(tensor_resolution) and (judged <= UNRESOLVED < tensor_resolution or zeros_passed):
            # Resolved only on the whole gradient's typical size (a bias before a normalisation, whose
            # gradient is rounding residue; a gradient of zeros, whose every error is 100% of the true
            # one): relative to its own norm its resolution says nothing, so it is stated on that size,
            # as strategy="full" states it. Its thresholds and rounding limit in the same unit.
            flat_scale = judged / tensor_resolution if tensor_resolution else 1.0  # 0 when the loss is flat at every step
            thresholds[leaf.name] = tuple(t * flat_scale for t in conclusive)
            if leaf.name in rounding:
                rounding[leaf.name] *= flat_scale
            tensor_resolution = judged
            context.notes.append(
                f"{leaf.name}: its gradient is far below the whole gradient's typical size (the loss hardly depends on "
                "it), so its resolution and the guarantee for it are relative to that typical size over as many "
                "elements, not to its own norm."
            )
        if i in cut:
            run.not_covered.append(
                f"{leaf.name}: not checked" if not usable else f"{leaf.name}: fewer random directions than planned"
            )
            if not usable:
                status, reason = "inconclusive", "budget"
        own = [e for e in usable if not e.joint] or usable
        report = TensorReport(
            name=leaf.name,
            shape=leaf.tensor_shape,
            status=status,  # type: ignore[arg-type]
            difference=_evidence_difference(own) * flat_scale,  # on the same scale as its resolution
            resolution=tensor_resolution,
            reason=reason,
            probes=len(usable),
            coverage=1.0 if usable else 0.0,
        )
        if status == "fail":
            report = _localized(run, prober, leaf, report)
            if context.low_precision is not None:
                report = _another_backward_in_float64(run, leaf, report)
        elif context.low_precision is not None:
            report = _beyond_rounding(run, leaf, report)
        tensors[leaf.name] = report

    _swaps_seen_later(run, tensors)
    exact = _escalate(run, tensors) if options.probes is None else {}
    if joint and evidence[0] and evidence[0][-1].code == FAIL and all(t.status == "pass" for t in tensors.values()):
        context.notes.append(
            "a random direction through every tensor disagreed, but directions restricted to each tensor agree: "
            "counted as a pass (a false alarm, or errors spread over tensors below each one's resolution)."
        )
    undecided = tuple(name for name, t in tensors.items() if t.status == "inconclusive")
    claimed = [t.resolution for t in tensors.values() if t.status != "inconclusive" and (t.probes or t.name in exact)]
    guarantee = Guarantee(
        kind="directional",
        confidence=options.confidence,
        resolution=max(claimed, default=math.inf),
        probes={leaf.name: tensors[leaf.name].probes for leaf in leaves},
        thresholds={name: () if name in undecided else found for name, found in thresholds.items()},
        undecided=undecided,
        exact=exact,
        rounding={name: size for name, size in rounding.items() if size > 0 and name not in exact},
    )
    # The check's resolution is its worst tensor's, the undecided ones included.
    worst = max((t.resolution for t in tensors.values()), default=math.inf)
    # Every direction once: those restricted to a tensor, and the joint ones (listed under every tensor).
    everything = [e for e in evidence[0] if e.joint] + [e for i in range(len(leaves)) for e in evidence[i] if not e.joint]
    run.ledger.end_phase("localization")
    return assemble_report(
        context, strategy="directional", tensors=tensors, difference=_evidence_difference(everything), resolution=worst,
        ignored=ignored, evaluations=run.ledger.phases, not_covered=run.not_covered, guarantee=guarantee,
    )  # fmt: skip


def _rounding_limit(low: LowPrecision, leaf: Leaf) -> float:
    """The relative error size that `grad`'s low-precision rounding allowance can hide in `leaf`
    (an error of its low-precision arithmetic alone, below it, reads as rounding), measured as a
    tensor's resolution is: ``||2 x the allowance's error bar|| / ||g||``."""
    norm = fd.safe_norm(low.precise[leaf.slice])
    return 2 * fd.ERROR_BAR_FACTOR * fd.safe_norm(low.allowance[leaf.slice]) / norm if norm else 0.0


def _another_backward_in_float64(run: _Run, leaf: Leaf, report: TensorReport) -> TensorReport:
    """A tensor the directions failed, under the float64 reference: they test `grad` run in
    float64 (`DirectionalProber`). Where the low-precision gradient differs from that run by more
    than rounding and agrees at every element probed one by one, the backward computes another
    gradient in float64 (a branch on the dtype): the directions' disagreement proves nothing about
    the gradient under test, which is inconclusive (reason "reference")."""
    low = run.context.low_precision
    assert low is not None
    probed = run.coordinates.results().within(leaf)
    if report.status != "fail" or not len(probed) or np.any(probed.codes == FAIL) or not np.any(low.beyond[leaf.slice]):
        return report
    dtype = np.dtype(low.computed_in)
    run.context.notes.append(
        f"{leaf.name}: random directions disagree with its backward run in float64, but its {dtype} result, which differs "
        f"from that float64 run by more than rounding, agrees at each of the {len(probed)} elements probed one by "
        f"one: the backward computes another gradient in float64 (a branch on the dtype?), so the directions prove "
        f"nothing about the {dtype} one, which only elements probed one by one can judge (or a check with shadow=False)."
    )
    return replace(
        report, status="inconclusive", reason="reference", finding=Finding("reference"), resolution=math.inf,
        taylor_slope=None,
    )  # fmt: skip


def _beyond_rounding(run: _Run, leaf: Leaf, report: TensorReport) -> TensorReport:
    """A tensor whose formula the directions did not fail, under the float64 reference: its
    low-precision gradient against the same `grad` in float64, element by element. Elements that
    differ by more than rounding (`LowPrecision.beyond`), the largest `LOCATED_KEPT` first, are
    probed one by one, and those the loss confirms as wrong fail the tensor."""
    low = run.context.low_precision
    assert low is not None
    start, stop = leaf.offset, leaf.offset + leaf.size
    suspects = start + np.flatnonzero(low.beyond[start:stop])
    if not len(suspects):
        return report
    gap = np.abs(run.context.analytic[suspects] - low.precise[suspects])
    suspects = suspects[np.argsort(-gap, kind="stable")[:LOCATED_KEPT]]
    if not run.affords(run.coordinates.most_per_element * len(suspects)):
        run.not_covered.append(f"{leaf.name}: elements that differ from its float64 run not probed within the budget")
        return replace(report, status="inconclusive", reason="budget")
    probed = run.coordinates.probe(np.sort(suspects), whole=True)
    wrong = probed.take(np.flatnonzero(probed.codes == FAIL))
    if not len(wrong):
        return report
    many = int(np.sum(low.beyond[start:stop]))
    if many > len(suspects):
        run.context.notes.append(
            f"{leaf.name}: {many} elements differ from the same backward run in float64 by more than rounding; the "
            f"{len(suspects)} that differ most were probed one by one."
        )
    common = dict(counts=element_counts(probed, leaf), kinks=kink_indices(leaf, probed))
    # Directions test the float64 run of the backward: they cannot confirm a hypothesis about this one.
    located = _located(run, None, leaf, replace(report, status="fail", reason=None), wrong, wrong, common)
    e = wrong.estimates
    analytic = run.context.analytic[wrong.indices]
    shared = _diagnosed(run, leaf, wrong).finding
    finding = replace(located.finding, dtype=str(np.dtype(low.computed_in)))
    if shared.kind in ("factor", "sign"):  # the wrong elements share a factor
        finding = replace(finding, kind=shared.kind, factor=shared.factor, batch_size=shared.batch_size)
    if many > len(suspects):  # not every suspect was probed: the count is of the probed ones
        finding = replace(finding, scope="probed", judged=len(probed), suspects=many)
    return replace(located, finding=finding, difference=relative_difference(analytic, e.numeric))


def _swaps_seen_later(run: _Run, tensors: dict[str, TensorReport]) -> None:
    """A tensor probed whole before a sibling of its shape was has been judged without that
    sibling's values: once they are known too, it may turn out to hold the sibling's gradient."""
    probed = run.coordinates.results()
    for leaf in run.context.user_params.leaves:
        report = tensors[leaf.name]
        if report.status != "fail" or report.diagnosis_kind != "formula" or report.analytic is None:
            continue
        again = leaf_report(run.context, leaf, probed.within(leaf), [], everything=probed)
        if again.diagnosis_kind == "swapped":
            tensors[leaf.name] = replace(again, probes=report.probes)


def _escalate(run: _Run, tensors: dict[str, TensorReport]) -> dict[str, float]:
    """Tensors that random directions left undecided (kinks or noise along every direction) get
    their elements probed one by one, within the budget or, without one, within
    `ESCALATION_FACTOR` times the evaluations spent so far: a coordinate step moves one element,
    not all of them, so it crosses far fewer kinks. Replaces their reports in `tensors`; returns
    the tensors so decided with their resolution, which is then exact, not probabilistic."""
    leaves = run.context.user_params.leaves
    undecided = [leaf for leaf in leaves if tensors[leaf.name].status == "inconclusive" and tensors[leaf.name].reason != "budget"]
    undecided.sort(key=lambda leaf: leaf.size)  # the cheapest to decide whole first
    if not undecided:
        return {}
    limit = None if run.budget.bounded else run.nfev * (1 + ESCALATION_FACTOR)
    # Coordinate steps in float32 cross kinks that float64 ones step inside (see docs/report.md):
    # evaluated in a lower precision, a sampled disagreement is not evidence enough to fail.
    native_low_precision = any(leaf.dtype != np.float64 for leaf in run.context.params.leaves)
    typical = per_element_cost(run.options.method, worst=False)

    def fits(count: int) -> bool:
        within_cap = limit is None or run.nfev + typical * count <= limit
        return within_cap and run.affords(run.coordinates.most_per_element * count)

    exact: dict[str, float] = {}
    for leaf in undecided:
        before = tensors[leaf.name]
        probed = _one_by_one(run, leaf, fits)
        typical = fd.rms(run.context.analytic)
        if not len(probed) == leaf.size and is_flat(probed, typical):
            # Zero within their error bars: judged on the whole gradient's scale, as a full check
            # judges a tensor the loss does not depend on (`leaf_report` does so for a whole one).
            probed = run.context.judge.as_flat(probed, typical)
        wrong = int(np.sum(probed.codes == FAIL))
        what = f"{leaf.name}: random directions left it undecided ({before.reason}); "
        if not len(probed):
            cap = "the budget" if limit is None else f"the {int(limit):,} evaluations a check without a budget spends on this"
            run.context.notes.append(what + f"probing its elements one by one did not fit {cap}.")
            continue
        whole = len(probed) == leaf.size
        tried = "every element was then probed on its own" if whole else (
            f"{len(probed)} of its {leaf.size} elements were then probed on their own"
        )
        if wrong and native_low_precision:
            run.context.notes.append(
                f"{what}{tried} ({_tally(probed, leaf)}, {wrong} disagree). In {leaf.dtype} such disagreements can come "
                "from kinks that its coarse steps cross, so they decide nothing here: evaluate the loss in float64 "
                "(shadow=None) to decide."
            )
        elif whole:
            decided = replace(leaf_report(run.context, leaf, probed, run.not_covered, everything=run.coordinates.results()), probes=before.probes)
            run.context.notes.append(f"{what}{tried}: {decided.status}.")
            if decided.status != "inconclusive":
                exact[leaf.name] = decided.resolution
            tensors[leaf.name] = decided
        elif wrong:
            tensors[leaf.name] = _sampled_failure(run, leaf, before, probed)
            run.context.notes.append(f"{what}{tried}: {wrong} are wrong.")
        else:
            run.context.notes.append(f"{what}{tried} ({_tally(probed, leaf)}), which is no verdict on the rest.")
    run.ledger.end_phase("escalation")
    return exact


def _one_by_one(run: _Run, leaf: Leaf, fits: Callable[[int], bool]) -> ElementResults:
    """Every element of `leaf` probed on its own, in chunks while they `fit`; or, when the whole
    tensor does not fit, `ESCALATION_SAMPLE` of them drawn at random."""
    start, stop = leaf.offset, leaf.offset + leaf.size
    run.describe(f"coordinates of {leaf.name}")
    if fits(leaf.size):
        for position in range(start, stop, CHUNK):
            count = min(CHUNK, stop - position)
            if not fits(count):
                break
            run.coordinates.probe(np.arange(position, position + count))
    else:
        count = min(ESCALATION_SAMPLE, leaf.size)
        if fits(count):
            chosen = keyed_rng(run.options.seed, SAMPLE, start, stop).choice(leaf.size, count, replace=False)
            run.coordinates.probe(start + np.sort(chosen))
    probed = run.coordinates.results()
    return probed.take(np.flatnonzero((probed.indices >= start) & (probed.indices < stop)))


def _sampled_failure(run: _Run, leaf: Leaf, before: TensorReport, sampled: ElementResults) -> TensorReport:
    """An undecided tensor whose elements, sampled and probed one by one, include wrong ones."""
    wrong = sampled.take(np.flatnonzero(sampled.codes == FAIL))
    finding = elements(leaf.tensor_shape, leaf.elements(wrong.indices - leaf.offset), _wrong_of(leaf, sampled)["judged"])
    if len(wrong) >= 2:
        found = _diagnosed(run, leaf, sampled).finding
        if found.scale is not None or found.kind == "rounded":
            finding = replace(found, scope="sampled")
    return replace(
        before, status="fail", reason=None, finding=replace(finding, scope="sampled"),
        worst=worst_elements(run.context, leaf, sampled, WORST_KEPT), counts=element_counts(sampled, leaf),
        kinks=kink_indices(leaf, sampled), taylor_slope=run.taylor_slope(sampled),
    )  # fmt: skip


def _tally(results: ElementResults, leaf: Leaf) -> str:
    """``"30 pass, 2 at kinks"``: the outcomes of probed elements."""
    words = {"pass": "pass", "kink": "at kinks", "noise": "too noisy", "nonfinite": "non-finite"}
    return ", ".join(f"{count} {words[outcome]}" for outcome, count in element_counts(results, leaf).items() if count and outcome in words)


def _wrong_of(leaf: Leaf, results: ElementResults) -> dict[str, int]:
    """How many of the elements `results` probed are wrong, of how many (a complex tensor's
    elements, not its parts)."""
    counts = element_counts(results, leaf)
    return dict(count=counts["fail"], judged=sum(counts.values()))


def _names(leaves: list[Leaf], indices: list[int], most: int = 3) -> str:
    names = [leaves[i].name for i in indices]
    return ", ".join(names[:most]) + (f" (+{len(names) - most})" if len(names) > most else "")


def _wants_another(evidence: list[_Evidence], options: Options, rounds: int) -> bool:
    """Whether a tensor gets a(nother) direction restricted to it."""
    usable = [e for e in evidence if e.counts]
    own = sum(1 for e in usable if not e.joint)
    codes = [e.code for e in usable]
    if FAIL in codes or own >= rounds:
        return False
    if PASS not in codes:
        return True  # the joint direction failed, or only kinks and noise so far
    if options.probes is not None:
        return False
    thresholds = [e.threshold for e in usable if e.code in (PASS, FAIL)]
    return resolution_at(thresholds, options.confidence) > RESOLUTION_GOAL


def _resolved(prober: DirectionalProber, leaf: int, status: str, reason: str | None, resolution_: float) -> tuple[str, str | None]:
    """A pass whose resolution, judged as the core judges a tensor's, is worse than `UNRESOLVED`
    proves nothing: inconclusive ("noise"), as strategy="full" says for the same tensor."""
    if status == "pass" and not prober.judged_resolution(leaf, resolution_) <= UNRESOLVED:
        return "inconclusive", "noise"
    return status, reason


def _evidence_difference(evidence: list[_Evidence]) -> float:
    usable = [e for e in evidence if np.isfinite(e.numeric)]
    if not usable:
        return 0.0
    return relative_difference(np.array([e.analytic for e in usable]), np.array([e.numeric for e in usable]))


def _localized(run: _Run, prober: DirectionalProber, leaf: Leaf, report: TensorReport) -> TensorReport:
    """A failing tensor: name its wrong elements (or say it is wrong throughout)."""
    start, stop = leaf.offset, leaf.offset + leaf.size
    per_probe = 1 if run.options.method == "complex" else len(fd.OFFSETS)
    run.describe(f"localizing errors in {leaf.name}")

    def sample(count: int) -> np.ndarray:
        count = min(count, leaf.size)
        return start + np.sort(keyed_rng(run.options.seed, SAMPLE, start, stop).choice(leaf.size, count, replace=False))

    found = localize(
        (start, stop),
        test_blocks=lambda blocks: [p.code for p in prober.probe(blocks, LOCALIZE)],
        test_elements=lambda indices: run.coordinates.probe(indices).codes,
        sample=sample,
        # Block probes stop their ladders at the budget; element probes may not, so count each
        # at its most.
        affords=lambda blocks, elements: run.affords(per_probe * blocks + run.coordinates.most_per_element * elements),
    )
    located = run.coordinates.probe(np.array(found.located, dtype=np.int64), whole=True)
    probed = run.coordinates.results()
    inside = (probed.indices >= start) & (probed.indices < stop)
    probed = probed.take(np.flatnonzero(inside))
    common = dict(counts=element_counts(probed, leaf), kinks=kink_indices(leaf, probed))

    if found.widespread:
        sampled = run.coordinates.probe(np.array(found.sampled, dtype=np.int64), whole=True)
        probed = run.coordinates.results().within(leaf)
        return _throughout(run, prober, leaf, report, sampled, located, probed, common, found.frontier)
    if found.pending:
        a, b = found.pending[0][0], found.pending[-1][1] - 1
        between = sum(y - x for x, y in found.pending) if not leaf.complex else len(leaf.elements(
            np.concatenate([np.arange(x, y) for x, y in found.pending]) - leaf.offset))  # fmt: skip
        run.not_covered.append(
            f"{leaf.name}: wrong elements not all named within the budget; the rest lie between "
            f"{leaf.index(a)} and {leaf.index(b)} ({between} elements)"
        )
    if len(located):
        return _located(run, prober, leaf, report, located, probed, common)
    if found.pending:
        return replace(report, finding=Finding("not_localized", scope="budget"), **common)
    if len(probed) == stop - start:
        # Bisection probed every element on its own, which is the exact per-element check: it decides,
        # as "full" would, resolution included (elements too noisy to judge leave it inconclusive).
        decided = leaf_report(run.context, leaf, probed, run.not_covered, everything=run.coordinates.results())
        run.context.notes.append(
            f"{leaf.name}: a random direction disagreed, and every element was then probed on its own: the "
            f"per-element verdict ({decided.status}) stands."
        )
        return replace(decided, probes=report.probes)
    # Nothing to name: was the failing direction a false alarm? Two fresh directions decide.
    if run.affords(2 * per_probe):
        again = [probe for round_ in (0, 1) for probe in prober.probe([(start, stop)], CONFIRM, round_)]
        if all(p.code == PASS for p in again):
            run.context.notes.append(
                f"{leaf.name}: one random direction disagreed, but bisection found no wrong element and two fresh "
                "directions agree; counted as a pass."
            )
            thresholds = tuple(p.threshold for p in again)
            confirmed = resolution_at(thresholds, run.options.confidence)
            status, reason = _resolved(prober, run.context.user_params.leaves.index(leaf), "pass", None, confirmed)
            return replace(
                report, status=status, reason=reason, resolution=confirmed, probes=report.probes + 2, **common,
            )
        if not all(p.code == FAIL for p in again):
            # Not reproduced: a fresh direction agrees or cannot tell (noise, kinks), and no element
            # was found wrong. Disagreement that comes and goes with the direction, and no element
            # to show for it (a loss full of kinks: grid_sample over millions), is then no finding.
            unsure = [p.code for p in again if p.code not in (PASS, FAIL)]
            status, reason = probe_codes_status(unsure) if unsure else ("inconclusive", "noise")
            run.context.notes.append(
                f"{leaf.name}: one random direction disagreed, but bisection found no wrong element and two fresh "
                f"directions did not both confirm it ({reason}): inconclusive."
            )
            return replace(
                report, status=status, reason=reason, resolution=math.inf, probes=report.probes + 2, **common,
            )
    return replace(report, finding=Finding("not_localized"), **common)


def _diagnosed(run: _Run, leaf: Leaf, probed: ElementResults, *, layouts: bool = False) -> Diagnosis:
    """What the elements of `leaf` probed one by one say, read off them alone; with `layouts`, also
    the layout hypotheses (`_hypotheses`) about the whole tensor they fit."""
    e = probed.estimates
    return diagnose(
        leaf.name, leaf.shape, run.context.analytic[probed.indices], e.numeric, e.error, probed.floor, probed.codes,
        run.options.batch_size, positions=probed.indices - leaf.offset,
        evidence=evidence(run.context, leaf, probed, None) if layouts else None, pairs=leaf.complex, dtype=leaf.dtype,
    )  # fmt: skip


def _region(
    run: _Run, leaf: Leaf, probed: ElementResults, frontier: tuple[tuple[int, int], ...]
) -> tuple[str, float | None] | None:
    """("all in row 2", 2.0): the few slices of the tensor that hold the wrong elements probed one
    by one, where every block bisection still saw fail reaches too (it holds a wrong element
    somewhere), and the wrong elements' common factor if they share one; None otherwise."""
    wrong = probed.take(np.flatnonzero(probed.codes == FAIL))
    positions = np.unique(leaf.elements(wrong.indices - leaf.offset))
    found = lines_holding(leaf.tensor_shape, positions) if len(positions) >= 2 else None
    if found is None:
        return None
    axis, lines = found
    if len(lines) > leaf.tensor_shape[axis] // 2:  # most of an axis is no region (a few samples in 4 of 5 columns)
        return None
    for a, b in frontier:  # a failing block that misses every line may hold wrong elements elsewhere
        block = np.unique(leaf.elements(np.arange(a, b) - leaf.offset))
        if not np.isin(np.unravel_index(block, leaf.tensor_shape)[axis], lines).any():
            return None
    found = _hypothesis(run, leaf, wrong)
    return lines_text(leaf.tensor_shape, axis, lines), found.scale if found is not None else None


def _hypothesis(run: _Run, leaf: Leaf, probed: ElementResults) -> Diagnosis | None:
    """What the probed elements of a failing tensor say about all of it: a factor or a layout
    (`_hypotheses`) read off them, before random directions confirm it (`_confirmed`)."""
    if np.count_nonzero(probed.codes == FAIL) < 2:
        return None
    return _diagnosed(run, leaf, probed, layouts=True)


def _confirmed(run: _Run, prober: DirectionalProber, leaf: Leaf, diagnosis: Diagnosis) -> bool:
    """Whether two fresh random directions through the whole tensor agree with what `diagnosis`
    implies there (and not with the gradient under test), within their error bars."""
    if diagnosis.implied is None:
        return False
    return _agree(run, prober, leaf, diagnosis.implied(np.arange(leaf.size)), disagree=True)


def _agree(run: _Run, prober: DirectionalProber, leaf: Leaf, gradient: np.ndarray, *, disagree: bool) -> bool:
    """Whether the numerical derivatives of two fresh random directions through `leaf` are those of
    `gradient` (flat, over the tensor), within their error bars; with `disagree`, also not those of
    the gradient under test (their probes fail)."""
    per_probe = 1 if run.options.method == "complex" else len(fd.OFFSETS)
    if not run.affords(2 * per_probe):
        return False
    start, stop = leaf.offset, leaf.offset + leaf.size
    for round_ in (0, 1):
        [probe] = prober.probe([(start, stop)], HYPOTHESIS, round_)
        expected = fd.dot(gradient, prober.direction(start, stop, HYPOTHESIS, round_))
        bar = 2 * probe.error + probe.floor
        if (disagree and probe.code != FAIL) or not abs(probe.numeric - expected) <= bar:
            return False
        if not disagree and not abs(expected) > bar:  # a zero derivative fits any gradient that is zero there
            return False
    return True


def _swapped(run: _Run, prober: DirectionalProber, leaf: Leaf) -> str | None:
    """The tensor of the same shape whose numerical gradient `leaf`'s gradient is, along two random
    directions through that tensor (the gradients of two parameters swapped), if any. An all-zero
    gradient is no other tensor's (it would fit every tensor the loss ignores)."""
    mine = run.context.analytic[leaf.slice]
    if not np.any(mine):
        return None
    leaves = run.context.user_params.leaves
    here = leaves.index(leaf)
    # The nearest siblings first, and only a few: a stack of identical layers has dozens.
    siblings = sorted((other for other in leaves if other is not leaf and other.shape == leaf.shape),
                      key=lambda other: abs(leaves.index(other) - here))[:SWAP_CANDIDATES]  # fmt: skip
    for other in siblings:
        if _agree(run, prober, other, mine, disagree=False):
            return other.name
    return None


def _located(
    run: _Run, prober: DirectionalProber | None, leaf: Leaf, report: TensorReport, located: ElementResults,
    probed: ElementResults, common: dict,
) -> TensorReport:  # fmt: skip
    """A failing tensor whose wrong elements were named; or, when they share a factor or a layout
    that two random directions (of `prober`) confirm over the whole tensor, one wrong throughout."""
    if prober is not None and len(probed) == leaf.size:
        # Every element probed on its own: the per-element verdict and diagnosis, as "full" gives them.
        return replace(leaf_report(run.context, leaf, probed, run.not_covered, everything=run.coordinates.results()), probes=report.probes)
    whole = _hypothesis(run, leaf, probed) if prober is not None else None
    if whole is not None and prober is not None and _confirmed(run, prober, leaf, whole):
        return replace(
            report, finding=replace(whole.finding, scope="throughout", count=None, judged=None),
            worst=worst_elements(run.context, leaf, probed, WORST_KEPT), taylor_slope=run.taylor_slope(located),
            probes=report.probes + 2, **common,
        )  # fmt: skip
    wrong_elements = leaf.elements(located.indices - leaf.offset)
    finding = replace(elements(leaf.tensor_shape, wrong_elements, math.prod(leaf.tensor_shape)), scope="located")
    shared = _diagnosed(run, leaf, located).finding
    if shared.kind == "rounded":
        finding = replace(finding, kind="rounded")
    elif len(wrong_elements) == 1:
        element = worst_elements(run.context, leaf, located, 1)[0]
        ratio = element.analytic / element.numeric if element.numeric else math.inf
        if isinstance(ratio, complex):  # a complex element's factor only when it is real
            ratio = ratio.real if abs(ratio.imag) <= 1e-9 * abs(ratio) else math.inf
        finding = replace(finding, factor=ratio if np.isfinite(ratio) and abs(ratio) < 1e6 else None)
    elif len(located) > leaf.size // 2:  # most elements wrong, and no factor or layout that holds over the tensor
        finding = replace(finding, kind="formula")
    elif shared.kind in ("factor", "sign", "zeros"):  # the wrong elements share a factor (a scaled or zeroed row)
        finding = replace(finding, factor=shared.factor, batch_size=shared.batch_size)
    return replace(
        report, finding=finding, worst=worst_elements(run.context, leaf, located, LOCATED_KEPT),
        taylor_slope=run.taylor_slope(located), **common,
    )


def _throughout(
    run: _Run, prober: DirectionalProber, leaf: Leaf, report: TensorReport, sampled: ElementResults,
    located: ElementResults, probed: ElementResults, common: dict, frontier: tuple[tuple[int, int], ...] = (),
) -> TensorReport:  # fmt: skip
    tally = _wrong_of(leaf, sampled)
    diagnosis = _hypothesis(run, leaf, probed)
    probes = report.probes
    if diagnosis is not None and _confirmed(run, prober, leaf, diagnosis):
        finding = replace(diagnosis.finding, scope="throughout", **tally)
        probes += 2
    elif diagnosis is not None and diagnosis.kind == "zeros" and not np.any(run.context.analytic[leaf.slice]):
        finding = replace(diagnosis.finding, scope="throughout", **tally)
    elif (other := _swapped(run, prober, leaf)) is not None:
        finding = Finding("swapped", other=other, scope="throughout", **tally)
        probes += 2
    elif diagnosis is not None and (diagnosis.implied is not None or diagnosis.kind == "rounded"):
        # Read off the sampled elements, not confirmed over the tensor: said of those only.
        finding = replace(diagnosis.finding, scope="sampled", **tally)
    elif (region := _region(run, leaf, probed, frontier)) is not None:
        # The wrong elements found, and the blocks bisection still saw fail, all lie in a few slices.
        where, factor = region
        finding = Finding(
            "elements", **_wrong_of(leaf, probed), where=where, factor=factor,
            batch_size=run.options.batch_size, scope="region",
        )
    elif tally["count"] >= 2 and tally["count"] < tally["judged"]:
        # Some sampled elements right, some wrong: said of the sample, with the wrong ones' factor.
        shared = _diagnosed(run, leaf, sampled.take(np.flatnonzero(sampled.codes == FAIL))).finding
        factor = shared.factor if shared.kind in ("factor", "sign", "zeros") else None
        finding = Finding("elements", scope="sampled", factor=factor, batch_size=run.options.batch_size, **tally)
    elif tally["count"] >= 2:
        finding = Finding("formula", scope="throughout", **tally)
    else:
        finding = Finding("elements", scope="throughout", **tally)  # wrong blocks in too many places to follow
    both = ElementResults.concatenate([located, sampled])
    return replace(
        report, finding=finding, worst=worst_elements(run.context, leaf, both, WORST_KEPT),
        taylor_slope=run.taylor_slope(both), probes=probes, **common,
    )
