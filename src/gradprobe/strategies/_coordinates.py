"""Coordinate strategies: "full" (every coordinate, at once or in budgeted chunks) and "sample".

`CoordinateProber` probes chosen coordinates and remembers every answer: the chunks of a budgeted
"full" check, the elements "sample" draws, and those localization narrows a failure down to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..estimate import _differences as fd
from ..estimate._oracle import exact_estimates
from ..judge._elements import ElementResults, analytic_stand_in
from ..judge._guarantee import sample_resolution
from ..judge._verdict import FAIL, KINK, NOISE
from ..report._types import Guarantee, Report
from ._context import CheckContext
from ._cost import per_element_cost
from ._direction_probes import ORDER, SAMPLE, keyed_rng
from ._report_builder import Ledger, assemble_report, element_tensor_reports, elements_summary

#: Coordinates per chunk of a budgeted "full" check (4 evaluations each, more when refined).
CHUNK = 256
#: Elements per tensor for strategy="sample" when `probes` is not given.
DEFAULT_SAMPLE = 32


class CoordinateProber:
    """Probes single coordinates and judges them, remembering every answer."""

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self._steps: np.ndarray | None = None
        # The judge measures each element against its tensor's typical gradient; without a full
        # numerical gradient, the analytic one stands in for it.
        self._scale_from = analytic_stand_in(context.analytic)
        # Answers so far: chunks in probing order, and where each element's answer sits. Only
        # probed elements take memory (a handful while localizing in a million parameters).
        self._chunks: list[ElementResults] = []
        self._where: dict[int, int] = {}
        self._all: ElementResults | None = None
        # A complex tensor's element is probed whole, both its parts (`_complex_elements`).
        self._complex = [(leaf.offset, leaf.offset + leaf.size) for leaf in context.user_params.leaves if leaf.complex]

    @property
    def steps(self) -> np.ndarray:
        """Per-element steps, computed on first use (O(n): not needed when nothing is probed)."""
        if self._steps is None:
            self._steps = self.context.estimator.steps()
        return self._steps

    @property
    def most_per_element(self) -> int:
        # An element asked for may bring its complex partner along: twice the cost, at most.
        return int(per_element_cost(self.context.options.method, worst=True)) * (2 if self._complex else 1)

    @property
    def evaluations_per_element(self) -> int:
        """At least this many evaluations per element (more when its ladder descends)."""
        return 1 if self.context.options.method == "complex" else len(fd.OFFSETS)

    def results(self) -> ElementResults:
        """Everything probed so far, in ascending flat order."""
        if not self._where:
            return ElementResults.empty()
        return self._gather(np.array(sorted(self._where), dtype=np.int64))

    def probe(self, indices: np.ndarray, *, whole: bool = False) -> ElementResults:
        """Outcomes for `indices` (in that order; with `whole`, also for the other part of each
        complex element among them); elements probed before are not probed again."""
        indices = np.asarray(indices, dtype=np.int64)
        if whole and self._complex:
            indices = np.unique(self._with_partners(indices))
        if not len(indices):
            return ElementResults.empty()
        fresh = np.array(sorted({int(i) for i in self._with_partners(indices)} - self._where.keys()), dtype=np.int64)
        if len(fresh):

            def judged(estimates: fd.Estimates) -> tuple[np.ndarray, np.ndarray]:
                return self.context.judge.codes(estimates, indices=fresh, scale_from=self._scale_from)

            estimates = self.context.estimator.estimate(fresh, self.steps)
            codes, floor = judged(estimates)
            closer = _closer_at_jumps(self.context, estimates, fresh, codes)
            closer = _confirmed(self.context, closer, fresh, self.steps, judged)
            if closer is not estimates:
                estimates = closer
                codes, floor = judged(estimates)
            offset = len(self._where)
            self._chunks.append(ElementResults(fresh, estimates, np.asarray(codes), np.asarray(floor)))
            self._where.update((int(i), offset + k) for k, i in enumerate(fresh))
            self._all = None
            if np.array_equal(indices, fresh):
                return self._chunks[-1]
        return self._gather(indices)

    def _with_partners(self, indices: np.ndarray) -> np.ndarray:
        """`indices`, and the other part of each complex element one of them is a part of."""
        partners = [start + ((indices[inside] - start) ^ 1) for start, stop in self._complex
                    if (inside := (indices >= start) & (indices < stop)).any()]  # fmt: skip
        return np.concatenate([indices, *partners]) if partners else indices

    def _gather(self, indices: np.ndarray) -> ElementResults:
        if self._all is None:
            self._all = ElementResults.concatenate(self._chunks)
        return self._all.take(np.array([self._where[int(i)] for i in indices], dtype=np.int64))


def run_full(context: CheckContext, ignored: tuple[str, ...]) -> Report:
    """Every coordinate at once: the exact per-element check (an oracle's, where one was given)."""
    ledger = Ledger(context)
    context.progress.describe("every coordinate")
    everything = np.arange(context.params.size)
    if context.oracle is not None:
        estimates = exact_estimates(context.oracle, context.user_params, context.analytic, context.estimator.spread)
    else:
        if context.options.method == "complex":
            context.estimator.require_complex_support(context.rng)
        steps = context.estimator.steps()
        estimates = context.estimator.estimate(everything, steps)
        estimates = _closer_at_jumps(context, estimates, everything, context.judge.codes(estimates)[0])
        estimates = _confirmed(context, estimates, everything, steps, context.judge.codes)
    return _coordinate_report(context, ledger, _judged_together(context, estimates), "full", ignored)


def _closer_at_jumps(context: CheckContext, estimates, indices: np.ndarray, codes: np.ndarray):
    """A staircase's jumps are not a slope: the elements about to fail or stay undecided, and
    those whose zero gradient saw the loss move, get a closer look
    (`CoordinateEstimator.locally_constant`) before they are judged for good (a zero passing inside
    a bar widened by jumps would leave its tensor too noisy to decide)."""
    moved_at_zero = (context.analytic[indices] == 0) & (estimates.numeric != 0)
    unsettled = np.flatnonzero((codes == FAIL) | (codes == NOISE) | (codes == KINK) | moved_at_zero)
    return context.estimator.locally_constant(estimates, indices, unsettled)


#: A failing element whose disagreement is within this many times its bar (error bar and floor) is
#: estimated once more before it is reported, ...
CONFIRM_WITHIN = 4.0
#: ... on a ladder whose steps are this fraction of the first's (other points, other rounding)...
CONFIRM_STEP = 0.7
#: ... for at most this many elements a check (marginal failures in such numbers are a tensor's
#: error, not a missed noise level, and each costs a ladder).
CONFIRM_MOST = 64
#: Two estimates of one derivative this far apart (times their difference) bound its error at least.
CONFIRM_SPREAD = 3.0


def _confirmed(
    context: CheckContext, estimates: fd.Estimates, indices: np.ndarray, steps: np.ndarray,
    judged: Callable[[fd.Estimates], tuple[np.ndarray, np.ndarray]],
) -> fd.Estimates:
    """A failure just beyond its bar may be the loss's noise beyond what was measured: near a
    minimum the noise tables can miss rounding that the probes' larger steps cross (a float64
    transformer trained to a loss of 3e-7 read "1 of 128 wrong", its numerical value 6.1e-14 off
    against a bar of 5.6e-14). Such elements are estimated once more at other steps; their
    estimate becomes the two's mean, its bar at least `CONFIRM_SPREAD` times their difference:
    two estimates of one derivative that differ show the noise they carry. A wrong element's two
    estimates agree, and it fails as before."""
    codes, floor = judged(estimates)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(estimates.analytic - estimates.numeric)
        marginal = np.flatnonzero((codes == FAIL) & (gap <= CONFIRM_WITHIN * (estimates.error + floor)))
    most = per_element_cost(context.options.method, worst=True) * len(marginal)
    if not len(marginal) or len(marginal) > CONFIRM_MOST or not context.affords(int(most)):
        return estimates
    before = context.noise.sigma
    again = context.estimator.estimate(indices[marginal], CONFIRM_STEP * steps)
    if context.noise.sigma > before:
        # The new ladders found the loss noisier than measured: every bar takes it (as the note says).
        estimates = replace(fd.rescale_noise(estimates, context.noise.sigma), settled=estimates.settled)
    first = estimates.numeric[marginal]
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.maximum(np.maximum(estimates.error[marginal], again.error), CONFIRM_SPREAD * np.abs(again.numeric - first))
    both = replace(again, numeric=(first + again.numeric) / 2, error=error)
    return fd.merge(estimates, both, marginal)


def _judged_together(context: CheckContext, estimates) -> ElementResults:
    """Every coordinate's estimate judged with the whole numerical gradient known."""
    codes, floor = context.judge.codes(estimates)
    return ElementResults(np.arange(context.params.size), estimates, np.asarray(codes), np.asarray(floor))


def run_coordinates(context: CheckContext, ignored: tuple[str, ...], strategy: str) -> Report:
    """"sample", or "full" in budgeted chunks (a seeded random order) until the budget runs out."""
    options = context.options
    if options.method == "complex":
        context.estimator.require_complex_support(context.rng)
    ledger = Ledger(context)
    prober = CoordinateProber(context)
    leaves = context.user_params.leaves
    if strategy == "sample":
        parts = []
        for leaf in leaves:
            count = min(leaf.size, options.probes or DEFAULT_SAMPLE)
            chosen = keyed_rng(options.seed, SAMPLE, leaf.offset, leaf.offset + leaf.size).choice(leaf.size, count, replace=False)
            parts.append(leaf.offset + np.sort(chosen))
        order = np.concatenate(parts)
    else:
        order = keyed_rng(options.seed, ORDER).permutation(context.params.size)
    budget = options.budget
    position = 0
    while position < len(order):
        remaining = budget.remaining(context.objective.nfev)
        size = len(order) - position if not budget.bounded else CHUNK
        if remaining is not None:
            # However far each element's step ladder descends, the chunk stays within the budget.
            size = min(size, remaining // prober.most_per_element)
        if budget.seconds is not None:
            # A chunk of about the time left, at the pace of the evaluations so far.
            pace = budget.elapsed() / max(context.objective.nfev, 1)
            left = budget.seconds - budget.elapsed()
            size = min(size, max(1, int(left / (pace * per_element_cost(options.method, worst=False) + 1e-12))))
        if size <= 0 or not context.affords(prober.evaluations_per_element * size):
            break
        chunk = order[position : position + size]
        context.progress.describe(f"coordinates {position + 1}-{position + len(chunk)} of {len(order)}")
        prober.probe(chunk)
        position += len(chunk)
    probed = prober.results()
    if len(probed) == context.params.size:
        # Every coordinate was reached: judged as the unbudgeted check judges them.
        probed = _judged_together(context, probed.estimates)
    return _coordinate_report(context, ledger, probed, strategy, ignored)


def _coordinate_report(
    context: CheckContext, ledger: Ledger, probed: ElementResults, strategy: str, ignored: tuple[str, ...]
) -> Report:
    options = context.options
    leaves = context.user_params.leaves
    planned = {leaf.name: min(leaf.size, options.probes or DEFAULT_SAMPLE) if strategy == "sample" else leaf.size for leaf in leaves}
    tensors = element_tensor_reports(context, probed, planned, ledger.not_covered, sampled=strategy == "sample")
    guarantee = None
    difference, resolution = elements_summary(context, probed)
    # The elements a tensor covered only in part resolve nothing about the others: a sampled
    # tensor that passes resolves a fraction of wrong elements, any other none.
    for name, t in tensors.items():
        if t.coverage < 1.0:
            passed_sample = strategy == "sample" and t.status != "inconclusive"
            tensors[name] = replace(t, resolution=sample_resolution(t.probes, options.confidence) if passed_sample else math.inf)
    if any(t.coverage < 1.0 for t in tensors.values()):
        # Then the report's is its worst tensor's, a tensor left undecided (inf) included.
        resolution = max(t.resolution for t in tensors.values())
    if strategy == "sample":
        decided = [t for t in tensors.values() if t.status != "inconclusive"]
        # A tensor small enough to be probed whole was checked element by element: no sampling bound.
        exact = {t.name: t.resolution for t in decided if t.coverage >= 1.0}
        sampled = [sample_resolution(t.probes, options.confidence) for t in decided if t.name not in exact]
        guarantee = Guarantee(
            kind="sample",
            confidence=options.confidence,
            resolution=max(sampled, default=0.0 if decided else math.inf),
            probes={leaf.name: tensors[leaf.name].probes for leaf in leaves},
            undecided=tuple(name for name, t in tensors.items() if t.status == "inconclusive"),
            exact=exact,
        )
    ledger.end_phase("coordinates")
    return assemble_report(
        context, strategy=strategy, tensors=tensors, difference=difference, resolution=resolution, ignored=ignored,
        evaluations=ledger.phases, not_covered=ledger.not_covered, guarantee=guarantee,
    )  # fmt: skip
