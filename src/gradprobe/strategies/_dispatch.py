"""The strategies beyond "probe every coordinate at once": what runs, in what order, within a budget.

* ``"directional"``: random directions (`_directional`) give every tensor a verdict with a stated
  detection guarantee in a few evaluations: first one direction through all tensors, then
  directions restricted to the tensors that need them; a failing tensor is then bisected down to
  its wrong elements (`_localize`), or reported wrong throughout with a sample.
* ``"sample"``: a random sample of coordinates per tensor, each with its exact answer.
* ``"full"`` under a ``budget``: every coordinate, in a seeded random order and in chunks, until
  the budget runs out; what was not reached is said in `Report.coverage`.
* ``"auto"``: "full" up to `AUTO_FULL_LIMIT` parameters (when the budget allows it), else
  "directional".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..estimate import _differences as fd
from ..judge._diagnosis import diagnose
from ._directional import (
    CONFIRM,
    LOCALIZE,
    MAX_AUTO_PROBES,
    ORDER,
    RESOLUTION_GOAL,
    SAMPLE,
    TENSOR,
    VERDICT,
    DirectionalProber,
    keyed_rng,
    probe_codes_status,
    resolution_at,
)
from ._localize import MAX_FRONTIER, localize
from ..estimate._noise import FEW_POINTS
from ._options import reported_options
from ..report._types import Coverage, Element, Guarantee, Report, TensorReport
from ..estimate._coordinates import COMPLEX_STEP, CoordinateProber, ElementResults
from ..judge._verdict import (
    ELEMENT_STATUSES,
    FAIL,
    KINK,
    PASS,
    UNRESOLVED,
    overall_status,
    relative_difference,
    resolution,
    tensor_status,
    undetectable,
)

#: "auto" probes every coordinate up to this many parameters (the seed's network has 47).
AUTO_FULL_LIMIT = 1000
#: The noise estimate of the directional strategy: one ECnoise table of 7 points and one repeat
#: call (the core uses three tables of 9, six for small problems, where a grid of few parameters
#: can hide rounding, and two repeats). Its evaluations are half of a large model's verdict cost.
DIRECTIONAL_NOISE = {"tables": 1, "points": FEW_POINTS, "repeats": 1}
#: Coordinates per chunk of a budgeted "full" check (4 evaluations each, more when refined).
CHUNK = 256
#: Elements per tensor for strategy="sample" when `probes` is not given.
DEFAULT_SAMPLE = 32
WORST_KEPT = 5
#: Located elements listed in `TensorReport.worst` (all of them, up to localization's own cap).
LOCATED_KEPT = MAX_FRONTIER
TAYLOR_EVALUATIONS = 5


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


def choose_strategy(options: Any, size: int) -> str:
    """What "auto" means for `size` parameters under `options.budget`."""
    if options.strategy != "auto":
        return options.strategy
    budget = options.budget.evaluations
    if size <= AUTO_FULL_LIMIT and (budget is None or budget >= 30 + 8 * size):
        return "full"
    return "directional"


def needs_strategies(options: Any, strategy: str) -> bool:
    """Whether this module runs the check (else the core probes every coordinate at once)."""
    return strategy != "full" or options.budget.bounded


def expected_evaluations(options: Any, size: int) -> int | None:
    """Roughly how many evaluations the check will take, for the progress bar (None: unknown)."""
    if options.budget.evaluations is not None:
        return options.budget.evaluations
    if choose_strategy(options, size) == "full":
        return 12 + len(fd.OFFSETS) * size
    return None  # random directions and localization: depends on what they find


def run_strategy(checker: Any, strategy: str, f0: float, sigma: float, spread: np.ndarray, ignored: tuple[str, ...]) -> Report:
    """Run `strategy` after the core's setup (the starting point, the noise, `grad`'s spread)."""
    if strategy == "directional":
        return run_directional(checker, f0, sigma, spread, ignored)
    return run_coordinates(checker, f0, sigma, spread, ignored, strategy)


class _Run:
    """What the strategies share: the checker, its budget and progress line, the gaps found."""

    def __init__(self, checker: Any, f0: float, sigma: float, spread: np.ndarray) -> None:
        self.checker = checker
        self.options = checker.options
        self.budget = checker.options.budget
        self.progress = getattr(checker, "progress", None)
        self.f0, self.sigma, self.spread = f0, sigma, spread
        self.not_covered: list[str] = []
        if self.options.method == "complex":
            checker._require_complex_support(f0, COMPLEX_STEP * fd.element_scales(checker.params))
        self.phases: dict[str, int] = {"setup": checker.objective.nfev}
        self.coordinates = CoordinateProber(checker, f0, sigma, spread)

    @property
    def nfev(self) -> int:
        return self.checker.objective.nfev

    def affords(self, evaluations: int) -> bool:
        return self.budget.affords(self.nfev, evaluations)

    def end_phase(self, name: str) -> None:
        """Book the evaluations since the last phase under `name`."""
        spent = self.nfev - sum(self.phases.values())
        if spent:
            self.phases[name] = self.phases.get(name, 0) + spent

    def describe(self, text: str) -> None:
        if self.progress is not None:
            self.progress.describe(text)

    def report(self, strategy: str, tensors: dict[str, TensorReport], difference: float, resolution_: float,
               ignored: tuple[str, ...], guarantee: Guarantee | None) -> Report:
        checker = self.checker
        self.end_phase("localization" if strategy == "directional" else "coordinates")
        coverage = Coverage(
            complete=not self.not_covered,
            budget=str(self.budget) if self.budget.bounded else None,
            not_covered=tuple(self.not_covered),
            evaluations=dict(self.phases),
        )
        return Report(
            status=overall_status([t.status for t in tensors.values()]),  # type: ignore[arg-type]
            difference=difference,
            resolution=resolution_,
            nfev=self.nfev,
            tensors=tensors,
            ignored=ignored,
            notes=merged_notes(checker.notes),
            method=self.options.method,
            strategy=strategy,
            seed=self.options.seed,
            noise=max(self.sigma, self.coordinates.largest_noise),
            options=reported_options(self.options),
            coverage=coverage,
            guarantee=guarantee,
        )

    # -- pieces shared by every strategy ---------------------------------------------------------

    def element_list(self, leaf: Any, results: ElementResults, keep: int) -> tuple[Element, ...]:
        e = results.estimates
        gap = np.where(np.isfinite(e.numeric), np.abs(e.analytic - e.numeric), np.inf)
        order = np.argsort(-gap, kind="stable")[:keep]
        return tuple(
            Element(leaf.index(int(results.indices[i])), float(self.checker.analytic[results.indices[i]]), float(e.numeric[i]))
            for i in order
        )

    def counts(self, results: ElementResults) -> dict[str, int]:
        return {s: int(np.sum(results.codes == k)) for k, s in enumerate(ELEMENT_STATUSES)}

    def kinks(self, leaf: Any, results: ElementResults) -> tuple[tuple[int, ...], ...]:
        return tuple(leaf.index(int(i)) for i in results.indices[results.codes == KINK])

    def taylor_slope(self, leaf: Any, results: ElementResults) -> float | None:
        """The core's Taylor-remainder slope along the error at the elements known to be wrong."""
        wrong = results.codes == FAIL
        if not np.any(wrong) or not self.affords(TAYLOR_EVALUATIONS):
            return None
        # Along the wrong elements only (the rest of the direction is zero): the same points.
        # (An element both located and sampled counts once.)
        positions, first = np.unique(results.indices[wrong], return_index=True)
        direction = self.checker.analytic[positions] - results.estimates.numeric[wrong][first]
        return self.checker._taylor_slope(self.f0, leaf, direction, indices=positions)


# -- directional ---------------------------------------------------------------------------------------


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


def run_directional(checker: Any, f0: float, sigma: float, spread: np.ndarray, ignored: tuple[str, ...]) -> Report:
    """First one random direction through every tensor at once (each tensor moved like one of its
    coordinate steps): a pass there is a pass for every tensor, with a guarantee per tensor. Tensors
    it leaves short of the resolution goal, and every tensor when it fails, get directions restricted
    to them; failing tensors are then localized."""
    run = _Run(checker, f0, sigma, spread)
    options = run.options
    prober = DirectionalProber(checker, f0, sigma, spread, affords=run.affords)
    leaves = checker.user_params.leaves
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
        [probe] = prober.probe([(0, checker.params.size)], VERDICT, round_)
        for i in range(len(leaves)):
            evidence[i].append(_Evidence(probe.code, probe.thresholds[i], probe.analytic, probe.numeric, joint))
        if probe.code != PASS:
            break

    # Directions restricted to one tensor: for every tensor when the joint direction did not pass,
    # else for the tensors it resolved too coarsely.
    if joint and any(e.code == FAIL for e in evidence[0]):
        run.end_phase("verdict")  # the gradient is wrong: finding which tensor is localization
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
    run.end_phase("localization" if "verdict" in run.phases else "verdict")

    tensors: dict[str, TensorReport] = {}
    thresholds: dict[str, tuple[float, ...]] = {}
    for i, leaf in enumerate(leaves):
        run.describe(f"judging {leaf.name}")
        usable = [e for e in evidence[i] if e.counts]
        conclusive = tuple(e.threshold for e in usable if e.code in (PASS, FAIL))
        thresholds[leaf.name] = conclusive
        status, reason = probe_codes_status([e.code for e in usable])
        tensor_resolution = resolution_at(conclusive, options.confidence)
        status, reason = _resolved(prober, i, status, reason, tensor_resolution)
        if i in cut:
            run.not_covered.append(
                f"{leaf.name}: not checked" if not usable else f"{leaf.name}: fewer random directions than planned"
            )
            if not usable:
                status, reason = "inconclusive", "budget"
        own = [e for e in usable if not e.joint] or usable
        report = TensorReport(
            name=leaf.name,
            shape=leaf.shape,
            status=status,  # type: ignore[arg-type]
            difference=_evidence_difference(own),
            resolution=tensor_resolution,
            reason=reason,
            probes=len(usable),
            coverage=1.0 if usable else 0.0,
        )
        if status == "fail":
            report = _localized(run, prober, leaf, report)
        tensors[leaf.name] = report

    if joint and evidence[0] and evidence[0][-1].code == FAIL and all(t.status == "pass" for t in tensors.values()):
        checker.notes.append(
            "a random direction through every tensor disagreed, but directions restricted to each tensor agree: "
            "counted as a pass (a false alarm, or errors spread over tensors below each one's resolution)."
        )
    resolutions = [t.resolution for t in tensors.values() if t.status != "inconclusive" and t.probes]
    worst = max(resolutions) if resolutions else math.inf
    guarantee = Guarantee(
        kind="directional",
        confidence=options.confidence,
        resolution=worst,
        probes={leaf.name: tensors[leaf.name].probes for leaf in leaves},
        thresholds=thresholds,
    )
    everything = [e for i in range(len(leaves)) for e in evidence[i] if not e.joint] or evidence[0]
    return run.report("directional", tensors, _evidence_difference(everything), worst, ignored, guarantee)


def _names(leaves: Any, indices: list[int], most: int = 3) -> str:
    names = [leaves[i].name for i in indices]
    return ", ".join(names[:most]) + (f" (+{len(names) - most})" if len(names) > most else "")


def _wants_another(evidence: list[_Evidence], options: Any, rounds: int) -> bool:
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


def _localized(run: _Run, prober: DirectionalProber, leaf: Any, report: TensorReport) -> TensorReport:
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
    located = run.coordinates.probe(np.array(found.located, dtype=np.int64))
    probed = run.coordinates.results()
    inside = (probed.indices >= start) & (probed.indices < stop)
    probed = probed.take(np.flatnonzero(inside))
    common = dict(counts=run.counts(probed), kinks=run.kinks(leaf, probed))

    if found.widespread:
        sampled = run.coordinates.probe(np.array(found.sampled, dtype=np.int64))
        return _throughout(run, leaf, report, sampled, located, common)
    if found.pending:
        a, b = found.pending[0][0], found.pending[-1][1] - 1
        run.not_covered.append(
            f"{leaf.name}: wrong elements not all named within the budget; the rest lie between "
            f"{leaf.index(a)} and {leaf.index(b)} ({sum(y - x for x, y in found.pending)} elements)"
        )
    if len(located):
        return _located(run, leaf, report, located, common)
    if found.pending:
        return replace(report, diagnosis="wrong; not localized within the budget", **common)
    if len(probed) == stop - start:
        # Bisection probed every element on its own, which is the exact per-element check: it decides.
        status, reason = tensor_status(probed.codes)
        run.checker.notes.append(
            f"{leaf.name}: a random direction disagreed, but every element, probed on its own, agrees; "
            "the per-element verdict stands."
        )
        return replace(report, status=status, reason=reason, diagnosis=None, hint=None, **common)
    # Nothing to name: was the failing direction a false alarm? Two fresh directions decide.
    if run.affords(2 * per_probe):
        again = [probe for round_ in (0, 1) for probe in prober.probe([(start, stop)], CONFIRM, round_)]
        if all(p.code == PASS for p in again):
            run.checker.notes.append(
                f"{leaf.name}: one random direction disagreed, but bisection found no wrong element and two fresh "
                "directions agree; counted as a pass."
            )
            thresholds = tuple(p.threshold for p in again)
            confirmed = resolution_at(thresholds, run.options.confidence)
            status, reason = _resolved(prober, run.checker.user_params.leaves.index(leaf), "pass", None, confirmed)
            return replace(
                report, status=status, reason=reason, resolution=confirmed, probes=report.probes + 2, **common,
            )
    hint = (
        f"{leaf.name}'s gradient disagrees along random directions, but no single element stands out: the errors are "
        "small and spread, or the loss is not smooth here. Try strategy='full' on a smaller model."
    )
    return replace(report, diagnosis="wrong, not localized", hint=hint, **common)


def _located(run: _Run, leaf: Any, report: TensorReport, located: ElementResults, common: dict) -> TensorReport:
    elements = run.element_list(leaf, located, LOCATED_KEPT)
    count = len(located)
    where = _lines(leaf.shape, located.indices - leaf.offset) if count > 1 else ""
    if count == 1:
        element = elements[0]
        ratio = element.analytic / element.numeric if element.numeric else math.inf
        factor = f", {ratio:.2f}x" if np.isfinite(ratio) and abs(ratio) < 1e6 else ""
        summary = f"1 wrong element, at {element.index}{factor}"
        hint = (
            f"{leaf.name} is right except at {element.index} (analytic {element.analytic:.6e}, numeric "
            f"{element.numeric:.6e}): look for an indexing or boundary slip there."
        )
    else:
        summary = f"{count} wrong elements{where}"
        hint = f"{leaf.name} is right except at {count} elements{where}: look for an indexing or boundary slip."
    return replace(
        report, diagnosis=summary, hint=hint, worst=elements, taylor_slope=run.taylor_slope(leaf, located), **common
    )


def _throughout(
    run: _Run, leaf: Any, report: TensorReport, sampled: ElementResults, located: ElementResults, common: dict
) -> TensorReport:
    e = sampled.estimates
    wrong = int(np.sum(sampled.codes == FAIL))
    tally = f"{wrong} of {len(sampled)} sampled elements wrong"
    diagnosis = None
    if wrong:
        diagnosis = diagnose(
            leaf.name, (len(sampled),), run.checker.analytic[sampled.indices], e.numeric, e.error, sampled.floor,
            sampled.codes, run.options.batch_size,
        )
    if diagnosis is not None and diagnosis.scale is not None:
        summary, hint, scale = f"{diagnosis.summary} throughout ({tally})", diagnosis.hint, diagnosis.scale
    elif wrong >= 2:
        summary, scale = f"wrong throughout ({tally})", None
        hint = f"{leaf.name} is wrong across the tensor with no constant factor: recheck its formula."
    else:
        summary, scale = f"wrong in more than {MAX_FRONTIER} places ({tally})", None
        hint = f"{leaf.name} has many scattered wrong elements: look for a systematic indexing slip."
    both = ElementResults.concatenate([located, sampled])
    return replace(
        report, diagnosis=summary, hint=hint, scale=scale, worst=run.element_list(leaf, both, WORST_KEPT),
        taylor_slope=run.taylor_slope(leaf, both), **common,
    )


def _lines(shape: tuple[int, ...], positions: np.ndarray) -> str:
    if len(shape) != 2 or len(positions) < 2:
        return ""
    rows, columns = np.unravel_index(positions, shape)
    if len(set(rows.tolist())) == 1:
        return f" (all in row {rows[0]})"
    if len(set(columns.tolist())) == 1:
        return f" (all in column {columns[0]})"
    return ""


# -- coordinates: "sample", and "full" under a budget -------------------------------------------------


def run_coordinates(checker: Any, f0: float, sigma: float, spread: np.ndarray, ignored: tuple[str, ...], strategy: str) -> Report:
    run = _Run(checker, f0, sigma, spread)
    options = run.options
    leaves = checker.user_params.leaves
    per_element = run.coordinates.evaluations_per_element
    if strategy == "sample":
        wanted = {}
        parts = []
        for leaf in leaves:
            count = min(leaf.size, options.probes or DEFAULT_SAMPLE)
            wanted[leaf.name] = count
            chosen = keyed_rng(options.seed, SAMPLE, leaf.offset, leaf.offset + leaf.size).choice(leaf.size, count, replace=False)
            parts.append(leaf.offset + np.sort(chosen))
        order = np.concatenate(parts)
    else:
        order = keyed_rng(options.seed, ORDER).permutation(checker.params.size)
    most = run.coordinates.most_per_element
    position = 0
    while position < len(order):
        remaining = run.budget.remaining(run.nfev)
        size = len(order) - position if not run.budget.bounded else CHUNK
        if remaining is not None:
            # However far each element's step ladder descends, the chunk stays within the budget.
            size = min(size, remaining // most)
        if size <= 0 or not run.affords(per_element * size):
            break
        chunk = order[position : position + size]
        run.describe(f"coordinates {position + 1}-{position + len(chunk)} of {len(order)}")
        run.coordinates.probe(chunk)
        position += len(chunk)

    probed = run.coordinates.results()
    tensors = {}
    for leaf in leaves:
        inside = np.flatnonzero((probed.indices >= leaf.offset) & (probed.indices < leaf.offset + leaf.size))
        mine = probed.take(inside)
        planned = wanted[leaf.name] if strategy == "sample" else leaf.size
        tensors[leaf.name] = _coordinate_report(run, leaf, mine, planned, strategy)
    e = probed.estimates
    analytic = checker.analytic[probed.indices]
    guarantee = None
    if strategy == "sample":
        guarantee = Guarantee(
            kind="sample",
            confidence=options.confidence,
            resolution=max(1 - (1 - options.confidence) ** (1 / max(1, t.probes)) for t in tensors.values()),
            probes={leaf.name: tensors[leaf.name].probes for leaf in leaves},
        )
    return run.report(
        strategy,
        tensors,
        relative_difference(analytic, e.numeric) if len(probed) else 0.0,
        resolution(undetectable(e, probed.codes, probed.floor), e.numeric, float(np.linalg.norm(analytic))) if len(probed) else math.inf,
        ignored,
        guarantee,
    )


def _coordinate_report(run: _Run, leaf: Any, mine: ElementResults, planned: int, strategy: str) -> TensorReport:
    e = mine.estimates
    a = run.checker.analytic[mine.indices]
    tensor_resolution = resolution(undetectable(e, mine.codes, mine.floor), e.numeric, float(np.linalg.norm(a))) if len(mine) else math.inf
    status, reason = tensor_status(mine.codes, tensor_resolution) if len(mine) else ("inconclusive", "budget")
    if len(mine) < planned:
        run.not_covered.append(f"{leaf.name}: {len(mine)} of {planned} elements checked" if len(mine) else f"{leaf.name}: not checked")
        if status == "pass":
            status, reason = "inconclusive", "budget"
    whole = len(mine) == leaf.size
    diagnosis = slope = None
    if status == "fail" or (status == "inconclusive" and reason != "budget"):
        at_kink = None if e.at_point is None else e.is_rough & e.at_point
        shape = leaf.shape if whole else (len(mine),)
        diagnosis = diagnose(leaf.name, shape, a, e.numeric, e.error, mine.floor, mine.codes, run.options.batch_size, at_kink,
                             reason=reason, tensor_resolution=tensor_resolution)  # fmt: skip
    if status == "fail":
        slope = run.taylor_slope(leaf, mine)
    worst = run.element_list(leaf, mine, WORST_KEPT)
    return TensorReport(
        name=leaf.name,
        shape=leaf.shape,
        status=status,  # type: ignore[arg-type]
        difference=relative_difference(a, e.numeric) if len(mine) else 0.0,
        resolution=tensor_resolution,
        scale=diagnosis.scale if diagnosis else None,
        diagnosis=diagnosis.summary if diagnosis else None,
        hint=diagnosis.hint if diagnosis else None,
        worst=worst if status != "pass" else worst[:1],
        reason=reason,
        kinks=run.kinks(leaf, mine),
        counts=run.counts(mine),
        taylor_slope=slope,
        probes=len(mine) if strategy == "sample" else 0,
        coverage=len(mine) / leaf.size,
        analytic=a.reshape(leaf.shape) if whole else None,
        numeric=e.numeric.reshape(leaf.shape) if whole else None,
        error_bar=(e.error + mine.floor).reshape(leaf.shape) if whole else None,
    )
