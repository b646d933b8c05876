"""Coordinate probes: the numerical derivative along single coordinates, with error bars.

Each coordinate descends its own step ladder (`_ladder`) until its estimate settles; on the way
the probes' own values refine the loss's noise (`NoiseModel`) and, in tensors full of kinks, every
element is taken below the kinks' scale. Complex step, where asked for, replaces the ladder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .._errors import InvalidArgument, UserFunctionError
from . import _differences as fd
from . import _screening as screening
from ._ladder import Ladder, coordinate_points, min_steps, parameter_spacing
from ._noise import noise_from_samples
from ._noise_model import NoiseModel
from ._objective import Objective

#: A tensor in which at least this fraction of the elements saw a kink is probed below the kinks' scale.
KINKED_FRACTION = 0.05
#: Probes needed before their own noise measure (median of their fourth-order combinations) counts.
PROBE_NOISE_MINIMUM = 8
#: A probe that saw no change at all is retried with steps this much larger, at most this often.
FLAT_GROWTH, FLAT_RETRIES = 64.0, 3
#: Before an element fails, its loss is evaluated at these fractions of the step its estimate came
#: from (never below `MIN_STEP_ULPS`): a loss bit-for-bit unchanged there on both sides is
#: locally constant (a staircase: round, floor, a step function), whatever slope larger steps saw
#: across its jumps.
FLAT_CHECK = (2.0**-16, 2.0**-24)
#: Elements per tensor checked that way first; the rest only if one of them was flat.
FLAT_CHECK_SAMPLE = 16


class CoordinateEstimator:
    """Numerical derivatives along coordinates of `objective`'s parameters.

    `spread` (per element) is the analytic gradient's own uncertainty (a non-deterministic `grad`,
    or its rounding under a float64 reference), added to each error bar; `noise` is the check's
    noise model, raised when the probes show more noise than it measured; `floor` gives the
    judge's allowance for the analytic side's rounding (`ElementJudge.least_floor`).
    """

    def __init__(
        self, objective: Objective, analytic: np.ndarray, method: fd.Method, f0: float, noise: NoiseModel, spread: np.ndarray,
        floor: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.objective, self.analytic, self.method, self.f0 = objective, analytic, method, f0
        self.noise, self.spread = noise, spread
        # Per coordinate (of the given flat positions), the disagreement the judge excuses as the
        # analytic side's rounding at the least: screening keeps an element within it.
        self.floor = floor if floor is not None else (lambda indices: np.zeros(len(indices)))
        self.params = objective.params
        # Every ladder starts from the noise measured before any probe: probes of a later chunk
        # are then those of an unchunked check (the noise they add shows in `noise` and its notes).
        self.start_sigma = noise.sigma
        # Half the height of the steps of a staircase the probes saw (`_staircase`), else 0.
        self.staircase = 0.0

    def steps(self) -> np.ndarray:
        """Every coordinate's first step (O(n): made when coordinates are probed at all)."""
        if self.method == "complex":
            return fd.COMPLEX_STEP * fd.element_scales(self.params)
        return fd.choose_steps(self.params, self.start_sigma, self.analytic, self.method)

    def estimate(self, indices: np.ndarray, steps: np.ndarray) -> fd.Estimates:
        """Estimates for the coordinates `indices` (in that order); `steps` is over all coordinates."""
        if self.method == "complex":
            return self._complex(indices, steps)
        return self._screened(indices, steps)

    @property
    def rounding(self) -> float:
        """Relative rounding of a loss value: half the coarsest parameter dtype's epsilon."""
        return 0.5 * max(float(np.finfo(leaf.dtype).eps) for leaf in self.params.leaves)

    # -- screening (`_screening`): two evaluations for most elements ----------------------------------

    def _screened(self, indices: np.ndarray, steps: np.ndarray) -> fd.Estimates:
        """Scouts of each large enough tensor descend their ladders; the tensor's other elements are
        probed once at the level the scouts chose, and those not clearly right descend theirs too."""
        params = self.params
        laddered, tensors = [], []
        for leaf in params.leaves:
            mine = np.flatnonzero((indices >= leaf.offset) & (indices < leaf.offset + leaf.size))
            if len(mine) < screening.SCREEN_MIN:
                laddered.append(mine)
                continue
            scouts = mine[screening.scout_positions(len(mine))]
            laddered.append(scouts)
            tensors.append((leaf, mine, scouts))
        if not tensors:
            return self._ladder(indices, steps)
        laddered = np.concatenate(laddered)
        ladder = self._descended(indices[laddered], steps)
        in_ladder = {int(p): k for k, p in enumerate(laddered)}
        levels = []
        for _, _, scouts in tensors:
            own = np.array([in_ladder[int(p)] for p in scouts])
            own = own[ladder.steps[own] == steps[indices[scouts]]]  # not restarted with larger steps
            assert ladder.estimates is not None
            levels.append(screening.choose_level(ladder, own, ladder.estimates.take(own), ladder.sigma))
        before = self.noise.sigma
        scouted = self._finished(ladder)
        sigma = max(ladder.sigma, self.noise.sigma) if self.noise.sigma > before else ladder.sigma
        kept_positions, kept, refine = self._pairs(indices, steps, tensors, levels, sigma)
        refine_positions = np.concatenate(refine) if refine else np.zeros(0, int)
        refined = []
        if len(refine_positions):
            refine_ladder = self._descended(indices[refine_positions], steps)
            # Kinks are a tensor's: those the refined elements met take the scouts below them too.
            if self._below_kinks([(ladder, indices[laddered]), (refine_ladder, indices[refine_positions])], indices):
                scouted = self._finished(ladder)
            refined = [self._finished(refine_ladder)]
        if self.noise.sigma > sigma:
            # The refined ladders found the loss noisier than the screening assumed: widen its bars.
            kept = [replace(fd.rescale_noise(part, self.noise.sigma), settled=part.settled) for part in kept]
        parts, positions = [scouted, *kept, *refined], [laddered, *kept_positions]
        if refined:
            positions.append(refine_positions)
        order = np.argsort(np.concatenate(positions), kind="stable")
        return fd.stack(parts).take(order)

    def _pairs(
        self, indices: np.ndarray, steps: np.ndarray, tensors: list, levels: list, sigma: float
    ) -> tuple[list[np.ndarray], list[fd.Estimates], list[np.ndarray]]:
        """Every screened tensor's other elements at its level, in one batch of points (two per
        element): the positions kept and their estimates, and the positions to refine."""
        jobs, points, refine = [], [], []
        for (_, mine, scouts), level in zip(tensors, levels):
            rest = np.setdiff1d(mine, scouts)
            if level is None:
                refine.append(rest)
                continue
            current = np.zeros(self.params.size)
            current[indices[rest]] = steps[indices[rest]]
            made, displacement = coordinate_points(self.params, indices[rest], current, fd.level_offsets(level.level))
            jobs.append((rest, displacement, level))
            points.extend(made)
        kept_positions, kept = [], []
        values = self.objective.evaluate(points).reshape(-1, 2) if points else np.zeros((0, 2))
        start = 0
        for rest, displacement, level in jobs:
            chosen = indices[rest]
            estimates, keep = screening.screened(
                level, values[start : start + len(rest)], displacement, self.f0, self.analytic[chosen],
                self.spread[chosen], self.floor(chosen), sigma, self.rounding,
            )  # fmt: skip
            start += len(rest)
            kept_positions.append(rest[keep])
            kept.append(estimates.take(keep))
            refine.append(rest[~keep])
        return kept_positions, kept, refine

    # -- finite differences -------------------------------------------------------------------------

    def _ladder(self, indices: np.ndarray, steps: np.ndarray) -> fd.Estimates:
        """Every coordinate of `indices` on its own step ladder."""
        return self._finished(self._descended(indices, steps))

    def _finished(self, ladder: Ladder) -> fd.Estimates:
        estimates, levels = ladder.estimates, ladder.levels
        assert estimates is not None
        if self.objective.on_a_plateau():
            estimates = replace(estimates, error=estimates.error + ladder.plateau_error(self.objective.smallest_change))
        return self._check_noise(estimates, ladder.sigma, estimates.settled | (levels >= ladder.deepest) & ~estimates.is_rough)

    def _descended(self, indices: np.ndarray, steps: np.ndarray) -> Ladder:
        params, analytic, spread = self.params, self.analytic, self.spread

        def evaluate_level(which: np.ndarray, level: int):
            chosen = indices[which]
            current = np.zeros(params.size)
            current[chosen] = ladder.steps[which]  # a flat probe may have been given larger steps
            points, displacement = coordinate_points(params, chosen, current, fd.level_offsets(level))
            values = self.objective.evaluate(points).reshape(len(chosen), 2)
            return values, analytic[chosen, None] * displacement, displacement

        def widen(estimates: fd.Estimates, which: np.ndarray) -> fd.Estimates:
            # Along a coordinate the analytic derivative is the element itself (its product with a
            # tiny displacement may have underflowed on the way).
            chosen = indices[which]
            return replace(
                estimates, analytic=analytic[chosen], error=estimates.error + fd.ERROR_BAR_FACTOR * spread[chosen]
            )

        # Each level halves the step; stop before the points come within a few ulps of each other.
        with np.errstate(over="ignore", divide="ignore"):
            ratio = np.clip(steps[indices] / min_steps(params)[indices], 1.0, 2.0**fd.MAX_LEVELS)
        deepest = np.clip(np.floor(np.log2(ratio)).astype(int) + 1, 2, fd.MAX_LEVELS)
        ladder = Ladder(
            evaluate_level, self.method, self.f0, steps[indices], self.start_sigma,
            deepest=deepest, adjust=widen, rounding=self.rounding, spacing=parameter_spacing(params, indices),
            first_order=True,
        )  # fmt: skip
        # Three levels everywhere first: their fourth-order combinations measure the loss's noise
        # where the probes are (rounding can be larger there than in the small noise tables), and
        # the descent then goes on with that.
        first = fd.window_levels(self.method)
        ladder.descend(np.arange(len(indices)), until=first)
        # A loss that did not move at all (it moves in steps larger than the step's effect) is
        # probed again with larger steps until it does: the height of its steps is its noise.
        for _ in range(FLAT_RETRIES):
            flat = ladder.flat()
            flat = flat[analytic[indices[flat]] != 0]
            if not len(flat):
                break
            # ...but never so large that a half-precision parameter overflows.
            limit = np.array([np.finfo(params.leaf_of(int(i)).dtype).max / 8 for i in indices[flat]])
            ladder.restart(flat, np.minimum(ladder.steps[flat] * FLAT_GROWTH, limit))
            ladder.descend(flat, until=first)
        assert ladder.estimates is not None
        self._probe_noise(ladder)
        ladder.descend(ladder.undecided())
        self._below_kinks([(ladder, indices)])
        return ladder

    def _below_kinks(self, ladders: list[tuple[Ladder, np.ndarray]], batch: np.ndarray | None = None) -> bool:
        """In a tensor where kinks were seen, take every element's estimate below the kinks' scale.

        A relu layer's weight moves every sample's pre-activation: its loss is smooth only between
        kinks that can lie closer together than the step. One kink inside the step shows as a
        jump; several small ones can hide (their jump estimates cancel) while still biasing the
        derivative. So when enough elements of a tensor saw kinks, every element descends to the
        level at which half of those were clear of them. `ladders` pairs each ladder with the flat
        positions of its probes; the share of kinked elements is of the tensor's elements in
        `batch` (all the ladders' by default: screened elements kept on their pair saw no kink).
        Returns whether any probe descended.
        """
        descended = False
        if batch is None:
            batch = np.concatenate([positions for _, positions in ladders])
        for leaf in self.params.leaves:
            inside = [(ladder, np.flatnonzero((at >= leaf.offset) & (at < leaf.offset + leaf.size))) for ladder, at in ladders]
            kinked = np.concatenate([ladder.kinked[mine] for ladder, mine in inside])
            count = int(np.sum((batch >= leaf.offset) & (batch < leaf.offset + leaf.size)))
            if kinked.sum() < max(2, KINKED_FRACTION * count):
                continue
            cleared = np.concatenate([ladder.cleared[mine] for ladder, mine in inside])
            cleared = cleared[kinked & (cleared > 0)]
            if not len(cleared):
                continue
            target = int(np.ceil(np.median(cleared)))
            for ladder, mine in inside:
                shallow = mine[ladder.levels[mine] < target]
                if len(shallow):
                    ladder.descend(shallow, at_least=target)
                    descended = True
        return descended

    def _probe_noise(self, ladder: Ladder) -> None:
        """Raise the noise level to what the first windows of all probes show, if that is more.

        The probes whose first window is dominated by round-off contribute their fourth-order
        combinations (noise plus a small smooth part); the median is robust to the few that still
        carry curvature or a kink.
        """
        estimates = ladder.estimates
        if estimates is None or estimates.noise_samples is None:
            return
        # Only probes whose window is round-off dominated (strong curvature would swamp their
        # combinations): a loose cut, so that the noise is not selected for being small.
        with np.errstate(over="ignore"):  # an infinite bar (subnormal steps) is not quiet, just unresolved
            quiet = estimates.truncation <= 2 * estimates.roundoff
        if estimates.significance is not None:
            quiet &= estimates.significance <= 3  # not a clear kink (a loose cut again: 4.5 sigma)
        measured = (
            noise_from_samples(estimates.noise_samples[quiet]) if quiet.sum() >= PROBE_NOISE_MINIMUM else 0.0
        )
        self.staircase = max(self.staircase, self._staircase(ladder))
        measured = max(measured, self.staircase)
        if measured > ladder.sigma:
            self.noise.raise_to(max(measured, self.noise.sigma), "difference tables")
            ladder.assume_noise(measured)

    def _staircase(self, ladder: Ladder) -> float:
        """Half the height of the loss's steps, if the probes saw a staircase; else 0.

        A loss that cancels to a few ulps of a larger intermediate (``log(1 + y)`` for tiny
        ``y``) is flat between steps of one such ulp: some probe values equal the loss at the
        point exactly, and every change is a whole multiple of one power of two. Its noise is the
        height of a step, whatever the smooth-looking noise tables said.
        """
        changes = (ladder.values - ladder.f0)[:, : 2 * fd.window_levels(self.method)]
        changes = changes[np.all(np.isfinite(changes), axis=1)]
        mixed = np.any(changes == 0, axis=1) & np.any(changes != 0, axis=1)
        if not np.any(mixed):
            return 0.0
        sizes = np.abs(changes[mixed])
        sizes = sizes[sizes > 0]
        quantum = float(np.min(sizes))
        power = np.log2(quantum)
        multiples = sizes / quantum
        # Whole multiples of a power of two, up to the last bits the final rounding may change.
        exact = 1e-9 * np.maximum(multiples, 1.0)
        if abs(power - np.round(power)) <= 1e-9 and np.all(np.abs(multiples - np.round(multiples)) <= exact):
            return quantum / 2
        return 0.0

    def _check_noise(self, estimates: fd.Estimates, sigma: float, usable: np.ndarray) -> fd.Estimates:
        """Widen the error bars if the probes themselves show more noise than was measured.

        A difference table can miss rounding noise that repeats along its grid (a loss of one or
        two parameters, say); the finest windows of the probes measure it where it matters.
        """
        if estimates.noise_samples is None or sigma <= 0:
            return estimates
        measured = noise_from_samples(estimates.noise_samples[usable])
        if not measured > sigma:
            return estimates
        self.noise.raise_to(max(measured, self.noise.sigma), "difference table")
        return fd.rescale_noise(estimates, measured)

    def locally_constant(self, estimates: fd.Estimates, indices: np.ndarray, which: np.ndarray) -> fd.Estimates:
        """`estimates` of the coordinates `indices`, with those at positions `which` (about to fail)
        re-estimated where the loss does not change at all at much smaller steps.

        An unchanged value at a step `h` on both sides bounds the slope by what the loss's
        resolution there hides: one ulp of its value, or its noise (a loss that cancels to a few
        ulps of a larger intermediate is flat between steps of that intermediate's ulp, which the
        noise measures), over `h`. A first estimate whose slope lies outside that bound came from
        steps that crossed jumps: the element's derivative is 0 within the bound instead, and is
        judged so (an analytic value outside the bound still fails: the loss does not move at all
        where it says it should).
        """
        params = self.params
        if self.method == "complex" or not len(which) or any(leaf.dtype != np.float64 for leaf in params.leaves):
            # Below float64 a smooth loss is flat at such steps too (its values are coarser than
            # its change there): unchanged values refute nothing.
            return estimates
        flat, reach = [], []
        for leaf in params.leaves:
            mine = which[(indices[which] >= leaf.offset) & (indices[which] < leaf.offset + leaf.size)]
            first = self._flat_steps(estimates, indices, mine[:FLAT_CHECK_SAMPLE])
            rest = self._flat_steps(estimates, indices, mine[FLAT_CHECK_SAMPLE:]) if np.any(first > 0) else np.zeros(0)
            reach.append(np.concatenate([first, rest]))
            flat.append(mine[: len(reach[-1])])
        where, steps = np.concatenate(flat), np.concatenate(reach)
        resolution = np.full(len(where), max(float(np.spacing(abs(self.f0))), self.noise.sigma))
        # Where the gradient says 0, the loss being flat says the same, unless the flatness is that
        # of a staircase of rounding (measured before any probe, or seen as one by them). Probes
        # that crossed the function's own jumps (round(x, 3) near a jump) raise the noise they
        # report to the jumps' height: that is no noise of the loss around the point.
        says_zero = self.analytic[indices[where]] == 0
        resolution[says_zero] = max(float(np.spacing(abs(self.f0))), self.start_sigma, self.staircase)
        with np.errstate(over="ignore", divide="ignore"):
            error = fd.ERROR_BAR_FACTOR * (resolution / steps + self.spread[indices[where]])
            # Only where the unchanged values refute the first estimate: its slope would have moved
            # the loss by more than that bound at the flat step (a genuinely small slope leaves a
            # loss unchanged at tiny steps too, and its first estimate is the better one).
            keep = (steps > 0) & (np.abs(estimates.numeric[where]) > error)
        where, steps, error = where[keep], steps[keep], error[keep]
        if not len(where):
            return estimates
        chosen = estimates.take(where)
        zero = np.zeros(len(where))
        with np.errstate(over="ignore"):  # a subnormal step: an infinite bar, not an overflow
            roundoff = resolution[keep] / steps
        constant = replace(
            chosen, numeric=zero, truncation=zero, roundoff=roundoff, right=zero, left=zero, error=error,
            **{name: np.zeros(len(where), bool) for name in ("rough", "at_point", "kink", "kinked") if getattr(chosen, name) is not None},
            **({"jump": zero} if chosen.jump is not None else {}),
            **({"settled": np.ones(len(where), bool)} if chosen.settled is not None else {}),
            **({"step": steps} if chosen.step is not None else {}),
        )  # fmt: skip
        return fd.merge(estimates, constant, where)

    def _flat_steps(self, estimates: fd.Estimates, indices: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Per position in `which`, the largest step at which the loss was unchanged on both sides
        at every `FLAT_CHECK` step (0 where it changed)."""
        if not len(which):
            return np.zeros(0)
        chosen = indices[which]
        base = estimates.step[which] if estimates.step is not None else self.steps()[chosen]
        floor = min_steps(self.params)[chosen]
        unchanged = np.ones(len(which), bool)
        reach = np.zeros(len(which))
        for fraction in FLAT_CHECK:
            current = np.zeros(self.params.size)
            current[chosen] = np.maximum(np.abs(base) * fraction, floor)
            points, displacement = coordinate_points(self.params, chosen, current, fd.level_offsets(0))
            values = self.objective.evaluate(points).reshape(len(chosen), 2)
            moved = np.all(displacement != 0, axis=1)
            unchanged &= moved & np.all(values == self.f0, axis=1)
            reach = np.maximum(reach, np.min(np.abs(displacement), axis=1))
        return np.where(unchanged, reach, 0.0)

    # -- complex step -----------------------------------------------------------------------------------

    def _complex(self, indices: np.ndarray, steps: np.ndarray) -> fd.Estimates:
        x = self.params.values
        points = [(np.array([i]), np.array([x[i] + 1j * steps[i]])) for i in indices]
        values = self.objective.evaluate(points, dtype=np.complex128)
        return fd.complex_step(values, steps[indices], self.analytic[indices])

    def require_complex_support(self, rng: np.random.Generator) -> None:
        """Complex step is exact only if the loss is complex-analytic; abs, max, np.real break it."""
        params, f0 = self.params, self.f0
        steps = fd.COMPLEX_STEP * fd.element_scales(params)
        v = rng.standard_normal(params.size)
        indices = np.arange(params.size)
        try:
            z = self.objective.evaluate([(indices, params.values + 1j * steps * v)], dtype=np.complex128)[0]
        except (UserFunctionError, InvalidArgument) as error:
            raise InvalidArgument(
                f"`method`='complex' needs a loss that accepts complex parameters, but `loss` failed on them "
                f"({error}); use method='richardson'.",
                argument="method",
            ) from error
        h = 1e-6 * fd.element_scales(params) * v
        # In float64 like the complex evaluation, so float32 rounding of x +- h cannot spoil the comparison.
        plus, minus = self.objective.evaluate(
            [(indices, params.values + h), (indices, params.values - h)], dtype=np.float64
        )
        central = (plus - minus) / 2e-6
        derivative = z.imag / fd.COMPLEX_STEP
        if z.imag == 0 or abs(derivative - central) > 1e-4 * (abs(central) + abs(derivative)) + 1e-8 * abs(f0):
            raise InvalidArgument(
                "`method`='complex' needs a complex-analytic loss, but this one drops or mangles the imaginary part "
                "(abs, max, np.real, comparisons or conjugation do that); use method='richardson'.",
                argument="method",
            )

    #: Evaluations `require_complex_support` takes.
    COMPLEX_SUPPORT_EVALUATIONS = 3
