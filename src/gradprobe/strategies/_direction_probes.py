"""Random-direction probes: a cheap verdict per tensor, with a stated detection guarantee.

A probe of a block of ``m`` elements (a whole tensor, or part of one while localizing) draws a
random vector ``v`` restricted to the block, its elements independent and uniform on
``[-sqrt(3), sqrt(3)]`` (mean 0, variance 1; four times cheaper to draw than Gaussian ones, which
matters at millions of elements), and moves along ``w = v * s / sqrt(m)`` (``s`` the elements'
natural sizes, as for coordinate steps; the ``sqrt(m)`` keeps the whole displacement as large as
one coordinate step). The Estimator measures the directional derivative from the loss at
``x ± t w`` and ``x ± t/2 w`` with its error bar, exactly as for a coordinate, and the analytic
side is ``g . (p - x)`` over the rounded points ``p``. Four evaluations judge a million elements.

The guarantee (derived in `gradprobe.judge._guarantee`): an error of relative size ``delta`` in a
tensor escapes one direction with probability at most ``min(1, r / delta)``, whatever its pattern,
``r`` proportional to the disagreement ``tau`` the probe cannot resolve; `DirectionalProber.thresholds`
gives each probe's ``r`` per tensor, and independent directions multiply their bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import _passes as passes
from ..estimate import _differences as fd
from ..estimate._objective import LinePoints
from ..estimate._ladder import MIN_STEP_ULPS, run_ladder
from ..judge._guarantee import direction_threshold
from ..judge._verdict import FAIL, KINK, NOISE, NONFINITE, PASS, analytic_floor, judge
from ._context import CheckContext

#: With ``probes=None``, directions are added to a tensor until its resolution at the requested
#: confidence is below this (or `MAX_AUTO_PROBES` is reached).
RESOLUTION_GOAL = 1e-4
#: Elements per tensor from which its typical step is read.
STEP_SAMPLE = 4096
MAX_AUTO_PROBES = 4
#: The finest level a direction's ladder may reach (coordinates stop at `MAX_LEVELS`). A direction
#: through a ReLU layer crosses one kink per unit and sample: with 65,536 of them (1024 units, a
#: batch of 64) the nearest lies about 1e-5 of a step away, so kinks stay inside the step for
#: ~17 halvings. Only a float64 evaluation has the ulps to go that deep (`_deepest` stops at
#: `MIN_STEP_ULPS` of the typical element), and only probes that keep seeing kinks pay for it.
DIRECTION_MAX_LEVELS = 30
# Seed-sequence tags, so that every direction depends only on (seed, purpose, block, round),
# never on the order in which probes run: serial, parallel and budget-cut runs agree.
VERDICT, LOCALIZE, CONFIRM, SAMPLE, ORDER, TENSOR, HYPOTHESIS = range(7)
#: Uniform on [-1/2, 1/2) times this has variance 1 (the guarantee's constant assumes it).
_UNIFORM_SPREAD = math.sqrt(12)



def keyed_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends only on `seed` and `key`.

    Examples
    --------
    >>> float(keyed_rng(0, 1, 2).standard_normal()) == float(keyed_rng(0, 1, 2).standard_normal())
    True
    """
    return np.random.default_rng([seed, *key])


@dataclass(frozen=True)
class BlockProbe:
    """One block probed along one random direction.

    `numeric`, `analytic`, `error` and `floor` are in units of the derivative along the direction.
    `thresholds` maps each tensor the block touches (by position in the parameters) to the relative
    error size ``r`` of its guarantee: an error of relative size ``delta`` in that tensor's part of
    the block escapes this probe with probability at most ``min(1, r / delta)``.
    """

    start: int
    stop: int
    code: int
    numeric: float
    analytic: float
    error: float
    floor: float
    thresholds: dict[int, float]

    @property
    def threshold(self) -> float:
        """The largest of `thresholds` (the one threshold of a block inside one tensor)."""
        return max(self.thresholds.values())


class DirectionalProber:
    """Probes blocks of the flat parameter vector along seeded random directions.

    A block may span several tensors (the first verdict probes all of them at once): each
    tensor's part of the direction is scaled so that it moves like one of that tensor's coordinate
    steps, and the guarantee is stated per tensor.

    Parameters
    ----------
    context : the check (its params, analytic gradient, objective, options; the loss at the
        point and its noise; `grad`'s per-element spread, added to the error bars).
    affords : ``affords(evaluations) -> bool``, whether the budget allows that many more.
    """

    def __init__(
        self, context: CheckContext, affords: Callable[[int], bool] = lambda cost: True
    ) -> None:
        self.objective = context.objective
        self.rtol = context.options.rtol
        self.affords = affords
        self.params = context.params
        self.analytic = context.analytic
        self.f0, self.sigma, self.spread = context.f0, context.noise.sigma, context.estimator.spread
        if context.low_precision is not None and context.low_precision.unavailable is None:
            # Under the float64 reference, directions test the formula: `grad` run in float64,
            # without the allowance for its low-precision rounding, which summed over a direction
            # of thousands of elements would hide any error. The low-precision result is compared
            # with it element by element instead (`_directional_strategy._beyond_rounding`).
            self.analytic = context.low_precision.precise
            self.spread = np.maximum(self.spread - context.low_precision.allowance, 0.0)
        spread = self.spread
        self.method = context.options.method
        self.seed = context.options.seed
        self.goal = RESOLUTION_GOAL * (1 - context.options.confidence)
        self.scales = fd.element_scales(self.params)
        self.leaf_ranges = [(leaf.offset, leaf.offset + leaf.size) for leaf in self.params.leaves]
        self._offsets = np.array([a for a, _ in self.leaf_ranges])
        self._leaf_step = self._typical_steps()
        norms = [fd.safe_norm(self.analytic[leaf.slice]) for leaf in self.params.leaves]
        total_norm = self._total_norm = math.hypot(*norms) or 1.0
        self._own_norm = norms
        self._leaf_norm, self._leaf_typical, self._leaf_eps = [], [], []
        for leaf, norm in zip(self.params.leaves, norms):
            self._leaf_norm.append(norm or total_norm)  # the unit of its thresholds
            self._leaf_typical.append(norm / math.sqrt(leaf.size))
            self._leaf_eps.append(float(np.finfo(leaf.dtype).eps))
        self._leaf_tiny = [float(np.finfo(leaf.dtype).smallest_subnormal) for leaf in self.params.leaves]
        # The analytic side's rounding as the judge assumes it (below float32 under the float64
        # reference, float32's: the lower precision's own rounding is measured, in `spread`).
        self._user_eps = [float(np.finfo(leaf.dtype).eps) for leaf in context.judge.user_params.leaves]
        self._leaf_smin: dict[int, float] = {}
        self._spread_any = bool(np.any(spread))
        self._all_double = all(leaf.dtype == np.float64 for leaf in self.params.leaves)

    def _typical_steps(self) -> list[float]:
        """Per tensor, the median coordinate step relative to the element's scale (the core's
        step rule), read off an evenly strided sample of at most `STEP_SAMPLE` elements per tensor:
        a statistic of the tensor, not worth a full pass of the step rule over millions."""
        if self.method == "complex":
            return [1.0] * len(self.params.leaves)
        sample = _StridedSample(self.params, STEP_SAMPLE)
        steps = fd.choose_steps(sample, self.sigma, sample.take(self.analytic), self.method)  # type: ignore[arg-type]
        scales = fd.element_scales(sample)
        return [float(np.median(steps[leaf.slice] / scales[leaf.slice])) for leaf in sample.leaves]

    def parts(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """The block's pieces inside each tensor: ``(leaf number, start, stop)``."""
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        pieces = []
        for leaf in range(first, len(self.leaf_ranges)):
            a, b = self.leaf_ranges[leaf]
            if a >= stop:
                break
            pieces.append((leaf, max(a, start), min(b, stop)))
        return pieces

    def _part_step(self, leaf: int, m: int) -> float:
        if self.method == "complex":
            return 1.0
        # Keep the typical element's displacement above a few ulps of its value.
        return max(self._leaf_step[leaf], 8 * self._leaf_eps[leaf] * math.sqrt(m))

    def direction(self, start: int, stop: int, purpose: int, round_: int, out: np.ndarray | None = None) -> np.ndarray:
        """The block's direction; each tensor's piece moves like one coordinate step of it, so the
        step along the direction is 1 (the ladder then halves it). Written into `out` if given."""
        w = np.empty(stop - start) if out is None else out
        for leaf, a, b in self.parts(start, stop):
            m = b - a
            piece = w[a - start : b - start]  # written in place: no temporaries of the block's size
            keyed_rng(self.seed, purpose, start, stop, round_, a).random(out=piece)
            passes.subtract(piece, 0.5, out=piece)
            passes.multiply(piece, self.scales[a:b], out=piece)
            passes.multiply(piece, _UNIFORM_SPREAD * self._part_step(leaf, m) / math.sqrt(m), out=piece)
        return w

    def _scratch(self, size: int, count: int = 2) -> list[np.ndarray]:
        """`count` work vectors of at least `size` (the objective's, see `Objective.work`)."""
        return self.objective.work(count, size)

    def _round(self, start: int, stop: int, values: np.ndarray) -> np.ndarray:
        for leaf, a, b in self.parts(start, stop):
            dtype = self.params.leaves[leaf].dtype
            if dtype != np.float64:
                values[a - start : b - start] = values[a - start : b - start].astype(dtype)
        return values

    def probe(self, blocks: Sequence[tuple[int, int]], purpose: int, round_: int = 0) -> list[BlockProbe]:
        """Probe each block along its own direction, each descending its step ladder (see
        `_probes.run_ladder`) until its verdict is decided or the budget says stop."""
        if not blocks:
            return []
        # The blocks of one call never overlap (halves, tensors): their directions fit in one
        # work vector of the parameters' size, kept for the check's life.
        total = sum(b - a for a, b in blocks)
        room = self._scratch(total)[1] if total <= self.params.size else np.empty(total)
        ends = np.cumsum([0] + [b - a for a, b in blocks])
        directions = [self.direction(a, b, purpose, round_, out=room[c:d]) for (a, b), c, d in zip(blocks, ends[:-1], ends[1:])]
        steps = np.full(len(blocks), fd.COMPLEX_STEP if self.method == "complex" else 1.0)
        scale, floor = self._scale_and_floor(blocks, directions)
        # `grad`'s own non-determinism along each direction widens the error bars.
        extra = np.zeros(len(blocks))
        if self._spread_any:
            extra = np.array([fd.dot(self.spread[a:b], np.abs(w)) for (a, b), w in zip(blocks, directions)])

        def widen(estimates: fd.Estimates, which: np.ndarray) -> fd.Estimates:
            return replace(estimates, error=estimates.error + fd.ERROR_BAR_FACTOR * extra[which]) if np.any(extra) else estimates

        if self.method == "complex":
            estimates = widen(self._complex(blocks, directions, steps), np.arange(len(blocks)))
        else:
            estimates = self._ladder(blocks, directions, steps, scale, floor, widen)
        codes = judge(estimates, scale, floor).codes
        results = []
        for k, (a, b) in enumerate(blocks):
            tau = float(2 * estimates.error[k] + floor[k])
            results.append(
                BlockProbe(
                    a, b, int(codes[k]), float(estimates.numeric[k]), float(estimates.analytic[k]),
                    float(estimates.error[k]), float(floor[k]), self.thresholds(a, b, tau),
                )
            )  # fmt: skip
        return results

    def _complex(self, blocks, directions, steps) -> fd.Estimates:
        x = self.params.values
        points = [(slice(a, b), x[a:b] + 1j * t * w) for (a, b), w, t in zip(blocks, directions, steps)]
        values = self.objective.evaluate(points, dtype=np.complex128)
        slopes = np.array([fd.dot(self.analytic[a:b], w) for (a, b), w in zip(blocks, directions)])
        return fd.complex_step(values, steps, slopes)

    def _ladder(self, blocks, directions, steps, scale, floor, widen) -> fd.Estimates:
        x = self.params.values

        # A direction of tiny (subnormal) or huge elements is measured after scaling it, and each
        # displacement, by a power of two (exact), so that no square under- or overflows.
        exponents, units, lengths = [], [], []
        for w in directions:
            e, squares = _exponent(w)
            exponents.append(e)
            units.append(w if e == 0 else np.ldexp(w, -e))
            lengths.append(squares if e == 0 else fd.dot(units[-1], units[-1]))
        # `delta` is the work vector the earlier stages wrote (its pages are mapped already);
        # `moved` is written only for points that do not move every parameter.
        delta, _, moved = self._scratch(max(b - a for a, b in blocks), count=3)
        finish = None if self._all_double else (lambda block, values: self._round(block.start, block.stop, values))

        def evaluate_level(which: np.ndarray, level: int):
            lines = [(slice(*blocks[k]), directions[k], steps[k] * fd.level_offsets(level)) for k in which]
            predicted, displacement = np.full(2 * len(which), np.nan), np.full(2 * len(which), np.nan)

            def seen(j: int, point: np.ndarray) -> None:
                # What the loss sees is the rounded point: its displacement, not t w, is measured.
                k = which[j // 2]
                (a, b), e = blocks[k], exponents[k]
                change = passes.subtract(point, x[a:b], out=delta[: b - a])
                if e:
                    np.ldexp(change, -e, out=change)
                predicted[j] = math.ldexp(fd.dot(self.analytic[a:b], change), e)
                displacement[j] = fd.dot(change, units[k]) / lengths[k]

            # Each point is computed as the loss reads it, into one reused vector.
            points = LinePoints(x, lines, finish=finish, buffer=moved, seen=seen)
            values = self.objective.evaluate(points).reshape(len(which), 2)
            return values, predicted.reshape(-1, 2), displacement.reshape(-1, 2)

        def decided(estimates: fd.Estimates, which: np.ndarray) -> np.ndarray:
            codes = judge(estimates, scale[which], floor[which]).codes
            done = estimates.settled | (codes == FAIL) & ~estimates.is_rough
            # A clean pass whose error bar alone meets the resolution goal needs no finer step.
            tau = 2 * estimates.error + floor[which]
            sharp = np.array([max(self.thresholds(*blocks[k], float(t)).values()) <= self.goal for k, t in zip(which, tau)])
            done |= (codes == PASS) & ~estimates.is_rough & sharp
            if not self.affords(2 * int(np.sum(~done))):
                return np.ones(len(which), dtype=bool)
            return done

        # Each level halves the step; stop before the typical element moves by under 16 ulps.
        deepest = np.array([self._deepest(a, b, math.ldexp(math.sqrt(ww), e)) for (a, b), ww, e in zip(blocks, lengths, exponents)])
        estimates, _ = run_ladder(
            evaluate_level, self.method, self.f0, steps, self.sigma, deepest=deepest, decided=decided, adjust=widen,  # type: ignore[arg-type]
            plateau=self.objective.smallest_change if self.objective.on_a_plateau() else None,
        )
        return estimates

    def _deepest(self, start: int, stop: int, length: float) -> int:
        eps = max(self._leaf_eps[leaf] for leaf, _, _ in self.parts(start, stop))
        m = stop - start
        typical_move = length / math.sqrt(m)
        size = fd.safe_norm(self.params.values[start:stop]) / math.sqrt(m) or 1.0
        # `MIN_STEP_ULPS` of the typical element; for subnormal ones an ulp is the smallest subnormal.
        smallest = MIN_STEP_ULPS * max(eps * size, min(self._leaf_tiny[leaf] for leaf, _, _ in self.parts(start, stop)))
        return int(np.clip(math.floor(math.log2(max(typical_move / smallest, 1.0))) + 1, 2, DIRECTION_MAX_LEVELS))

    def _scale_and_floor(self, blocks, directions) -> tuple[np.ndarray, np.ndarray]:
        """Per block: the typical size of ``g . w`` (the unit for "resolved") and the disagreement
        the analytic side's own rounding explains."""
        scale, floor = np.empty(len(blocks)), np.empty(len(blocks))
        products = self._scratch(max(b - a for a, b in blocks), count=1)[0]
        for k, ((a, b), w) in enumerate(zip(blocks, directions)):
            gw = passes.multiply(self.analytic[a:b], w, out=products[: b - a])
            typical, slope = fd.safe_norm(gw), float(gw.sum())
            sum_absolute = float(passes.absolute(gw, out=gw).sum())
            # The analytic side's rounding: max(|g_i|, the tensor's typical |g|) |w_i| per element
            # (the same bits as max(|g_i w_i|, typical |w_i|): rounding keeps the order), signed
            # as w_i: only its norm is taken.
            rounding, eps, fallback = 0.0, 0.0, 0.0
            for leaf, c, d in self.parts(a, b):
                here = passes.absolute(self.analytic[c:d], out=products[c - a : d - a])
                passes.maximum(here, self._leaf_typical[leaf], out=here)
                passes.multiply(here, w[c - a : d - a], out=here)
                if not typical:  # the unit for a block whose g . w is all zeros
                    fallback = math.hypot(fallback, (self._leaf_typical[leaf] or 1.0) * fd.safe_norm(w[c - a : d - a]))
                rounding = math.hypot(rounding, fd.safe_norm(here))
                eps = max(eps, self._user_eps[leaf])
            scale[k] = typical or fallback or 1.0
            rounding = np.array([rounding])
            floor[k] = analytic_floor(np.array([slope]), rounding, np.array([eps]), self.rtol)[0]
            # Summing m products in float64 (pairwise) rounds by about log2(m) ulps of sum |g_i w_i|.
            floor[k] += np.finfo(float).eps * (math.log2(b - a) + 1) * sum_absolute
        return scale, floor

    def _smallest_scale(self, leaf: int, start: int, stop: int) -> float:
        if (start, stop) == self.leaf_ranges[leaf]:
            if leaf not in self._leaf_smin:
                self._leaf_smin[leaf] = float(np.min(self.scales[start:stop]))
            return self._leaf_smin[leaf]
        return float(np.min(self.scales[start:stop]))

    def judged_resolution(self, leaf: int, resolution: float) -> float:
        """A tensor's `resolution` (relative to its own gradient, or to the whole gradient's norm
        where its own is zero) measured, as the core judges a tensor, against the larger of its
        own gradient and the whole gradient's typical size over as many elements: a tensor whose
        gradient is almost nothing is not unresolved for missing a tenth of it, and one the loss
        cannot see at all is."""
        a, b = self.leaf_ranges[leaf]
        typical = self._total_norm * math.sqrt((b - a) / self.params.size)
        return resolution * (self._leaf_norm[leaf] / max(self._own_norm[leaf], typical))

    def all_zero(self, leaf: int) -> bool:
        """Whether the gradient under test is zero throughout the tensor: a resolution relative to
        its own norm then says nothing (every error is 100% of the true gradient)."""
        return not self._own_norm[leaf]

    def thresholds(self, start: int, stop: int, tau: float) -> dict[int, float]:
        """Per tensor piece, its `direction_threshold`: ``r = sqrt(2/3) tau sqrt(m) / (s_min t ||g_T||)``."""
        result = {}
        for leaf, a, b in self.parts(start, stop):
            m = b - a
            smallest_step = self._smallest_scale(leaf, a, b) * self._part_step(leaf, m)
            result[leaf] = direction_threshold(tau, m, smallest_step, self._leaf_norm[leaf])
        return result


def _exponent(w: np.ndarray) -> tuple[int, float]:
    """``(0, w . w)`` when ``w . w`` is safe to compute, else the power of two that brings `w`
    near 1 (and the unusable ``w . w``).

    Examples
    --------
    >>> _exponent(np.array([1.0, 2.0])), _exponent(np.array([1e-310, 0.0]))[0]
    ((0, 5.0), -1029)
    """
    squares = fd.dot(w, w)
    if fd.SQUARES_RANGE[0] < squares < fd.SQUARES_RANGE[1]:
        return 0, squares
    largest = float(np.max(np.abs(w), initial=0.0))
    return (int(np.frexp(largest)[1]) if 0 < largest < math.inf else 0), squares


class _StridedSample:
    """Every k-th element of each tensor, as a stand-in for `Params` in per-tensor statistics."""

    def __init__(self, params: Any, per_leaf: int) -> None:
        leaves, self._picks = [], []
        offset = 0
        for leaf in params.leaves:
            stride = max(1, leaf.size // per_leaf)
            pick = np.arange(leaf.offset, leaf.offset + leaf.size, stride)
            leaves.append(replace(leaf, shape=(len(pick),), offset=offset))
            self._picks.append(pick)
            offset += len(pick)
        self.leaves = tuple(leaves)
        self._positions = np.concatenate(self._picks)
        self.values = params.values[self._positions]
        self.size = offset

    def take(self, flat: np.ndarray) -> np.ndarray:
        return flat[self._positions]


def probe_codes_status(codes: Sequence[int]) -> tuple[str, str | None]:
    """A tensor's status from its directional probes: any failure fails it; no pass at all leaves
    it inconclusive (the reason of the first unresolved probe); kinks alone prove nothing."""
    codes = list(codes)
    if FAIL in codes:
        return "fail", None
    if PASS in codes:
        return "pass", None
    for code, reason in ((NOISE, "noise"), (NONFINITE, "nonfinite"), (KINK, "kink")):
        if code in codes:
            return "inconclusive", reason
    return "inconclusive", "budget"
