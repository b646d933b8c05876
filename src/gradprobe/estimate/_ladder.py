"""The Plan: which points to evaluate the loss at, and how far down each probe's step ladder goes.

A coordinate probe moves one parameter by ``± t 2**-k`` for levels ``k = 0, 1, ...``; its answer
is exact for that element. Points are rounded to the parameter's dtype first, and the rounded
displacement is what the Estimator uses, so the probe measures what the loss really saw.

`Ladder` (and `run_ladder`) drives any set of probes (coordinates here, random directions
elsewhere): every probe gets levels 0, 1 and 2; a probe whose estimate is not yet decided gets one
finer level at a time, so most probes cost six evaluations and only those with strong curvature
or a kink inside their step descend further.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from . import _differences as fd
from ._objective import Point
from ..params._params import Params

# The smallest step a level may use, in ulps of the parameter: below it the rounded points stop
# being distinct and evenly spaced.
MIN_STEP_ULPS = 16

#: ``evaluate_level(which, level) -> (values, predicted, displacement)``, each ``(len(which), 2)``:
#: the loss at the level's two points for the probes at positions `which`, the analytic
#: prediction of each change, and each rounded displacement along the probe's direction.
LevelEvaluator = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def round_at(params: Params, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Round `values` destined for flat positions `indices` to those parameters' dtypes."""
    rounded = np.array(values, dtype=float)
    for leaf in params.leaves:
        if leaf.dtype == np.float64:
            continue
        inside = (indices >= leaf.offset) & (indices < leaf.offset + leaf.size)
        # A point past the dtype's range (a noise table retried at ever larger spacings on a flat
        # loss) stays at its largest finite value rather than overflowing to inf.
        largest = float(np.finfo(leaf.dtype).max)
        rounded[inside] = np.clip(rounded[inside], -largest, largest).astype(leaf.dtype)
    return rounded


def coordinate_points(
    params: Params, indices: np.ndarray, steps: np.ndarray, offsets: np.ndarray = fd.OFFSETS
) -> tuple[list[Point], np.ndarray]:
    """Points ``x_i + offsets * h_i`` for each coordinate ``i`` in `indices`.

    Returns the points (probe-major: all offsets of the first index, then the next) and the
    rounded displacements, shaped ``(len(indices), len(offsets))``.
    """
    x = params.values[indices]
    targets = x[:, None] + offsets[None, :] * steps[indices, None]
    positions = np.repeat(indices, len(offsets))
    moved = round_at(params, positions, targets.ravel()).reshape(targets.shape)
    points = [(np.array([i]), np.array([v])) for i, v in zip(positions, moved.ravel())]
    return points, moved - x[:, None]


def parameter_spacing(params: Params, indices: np.ndarray) -> np.ndarray:
    """Per parameter of `indices`, one ulp of its scale (`element_scales`) in its dtype: how finely
    the values the loss and the gradient are computed from can resolve it (`finite_differences`'s
    `spacing`)."""
    scales = fd.element_scales(params)[indices]
    spacing = np.empty(len(indices))
    for leaf in params.leaves:
        inside = (indices >= leaf.offset) & (indices < leaf.offset + leaf.size)
        spacing[inside] = np.spacing(scales[inside].astype(leaf.dtype)).astype(float)
    return spacing


def min_steps(params: Params) -> np.ndarray:
    """Per parameter, the smallest step a ladder level may take (`MIN_STEP_ULPS` ulps)."""
    smallest = np.empty(params.size)
    for leaf in params.leaves:
        x = np.abs(params.values[leaf.slice]).astype(leaf.dtype)
        smallest[leaf.slice] = MIN_STEP_ULPS * np.spacing(x).astype(float)
    return smallest


class Ladder:
    """Step ladders for ``len(steps)`` probes, descended one level at a time where needed.

    Parameters
    ----------
    evaluate_level : callable
        See `LevelEvaluator`.
    method : {"richardson", "central"}
    f0 : float
        The loss at the point.
    steps : (n,) array
        Each probe's level-0 step.
    sigma : float
        The loss's noise.
    deepest : (n,) int array
        The number of levels each probe may use at most (at least 2).
    adjust : callable, optional
        ``adjust(estimates, which)``, applied to every batch of estimates (e.g. to widen the error
        bars by the analytic gradient's own non-determinism).
    decided : callable, optional
        ``decided(estimates, which) -> bool mask``: probes (at positions `which`) whose verdict a
        finer level cannot change; by default `Estimates.decided`.
    rounding : float, optional
        Relative rounding of a loss value (see `finite_differences`).
    first_order : bool, optional
        Widen the bars of linearly converging probes (see `finite_differences`).
    spacing : (n,) array, optional
        Each probe's parameter resolution (see `finite_differences`); zero by default.

    Attributes
    ----------
    estimates : Estimates
        One per probe, from the finest window it reached (after the first `descend`).
    levels : (n,) int array
        How many levels each probe has used (two evaluations each).
    kinked : (n,) bool array
        Probes that saw a kink inside their step at some level (`Estimates.kink`).
    cleared : (n,) int array
        For those, the number of levels at which the kink had left the step (the probe settled),
        else 0.
    """

    def __init__(
        self,
        evaluate_level: LevelEvaluator,
        method: fd.Method,
        f0: float,
        steps: np.ndarray,
        sigma: float,
        *,
        deepest: np.ndarray,
        adjust: Callable[[fd.Estimates, np.ndarray], fd.Estimates] = lambda e, which: e,
        decided: Callable[[fd.Estimates, np.ndarray], np.ndarray] = lambda e, which: e.decided,
        rounding: float = 0.0,
        first_order: bool = False,
        spacing: np.ndarray | None = None,
    ) -> None:
        self.evaluate_level, self.method, self.f0, self.sigma = evaluate_level, method, f0, sigma
        self.decided, self.rounding, self.first_order = decided, rounding, first_order
        self.spacing = np.zeros(len(steps)) if spacing is None else np.asarray(spacing, dtype=float)
        self.steps, self.deepest, self.adjust = np.asarray(steps, dtype=float), np.asarray(deepest), adjust
        n = len(self.steps)
        self.max_levels = max(fd.MAX_LEVELS, int(np.max(self.deepest, initial=0)))
        self.values, self.predicted, self.displacement = (np.full((n, 2 * self.max_levels), np.nan) for _ in range(3))
        self.levels = np.zeros(n, dtype=int)
        self.kinked = np.zeros(n, dtype=bool)
        self.cleared = np.zeros(n, dtype=int)
        self.clean_streak = np.zeros(n, dtype=int)
        self.estimates: fd.Estimates | None = None

    def descend(self, which: np.ndarray, *, at_least: np.ndarray | int = 0, until: int | None = None) -> None:
        """Add levels to the probes at positions `which` until each is decided (`Estimates.decided`)
        with at least `at_least` levels, or at its deepest level (or at `until` levels)."""
        which = np.asarray(which, dtype=int)
        minimum = np.broadcast_to(np.asarray(at_least), (len(self.steps),))
        for level in np.unique(self.levels[which]):
            self._descend_together(which[self.levels[which] == level], minimum, until or self.max_levels)

    def undecided(self) -> np.ndarray:
        """Positions of the probes that a finer level could still change."""
        if self.estimates is None:
            return np.arange(len(self.steps))
        done = self.decided(self.estimates, np.arange(len(self.steps)))
        return np.flatnonzero(~done & (self.levels < self.deepest))

    def restart(self, which: np.ndarray, steps: np.ndarray) -> None:
        """Forget what the probes at positions `which` saw and give them new level-0 steps."""
        for table in (self.values, self.predicted, self.displacement):
            table[which] = np.nan
        self.steps[which] = steps
        self.levels[which] = 0
        self.kinked[which] = False
        self.cleared[which] = 0
        self.clean_streak[which] = 0

    def plateau_error(self, smallest_change: float) -> np.ndarray:
        """Per probe, the error bar a plateau leaves its estimate, for a loss of 0.0 that kept that
        value at most points of the check (`Objective.on_a_plateau`): where a probe's finest window
        saw no change, the loss rounds to 0 at the finest steps, by up to the smallest change the
        probe showed at coarser steps, or if it showed none, the smallest the check saw anywhere
        (`smallest_change`). A classifier whose every
        margin is large computes its loss as exactly 0.0 (``log(1 + 1e-20)`` rounds to 0, in
        float64 too) while its right gradient is 1e-22: with no noise measured, that was FAILed
        "should be zero". Only where the analytic value is not zero: a zero one on a plateau is
        what a loss truly flat there (a relu whose inputs are all negative, a hinge loss whose
        margins are met, an op whose output is zero) has, and passed before as it does now."""
        assert self.estimates is not None
        change = np.abs(self.values - self.f0)
        seen = np.isfinite(change)
        columns = np.arange(change.shape[1])[None, :]
        first = 2 * np.maximum(self.levels - fd.window_levels(self.method), 0)[:, None]
        window = (columns >= first) & (columns < 2 * self.levels[:, None]) & seen
        still = window.any(axis=1) & ~np.any(window & (change != 0), axis=1)
        height = np.min(np.where(seen & (change > 0), change, np.inf), axis=1)
        height = np.where(np.isfinite(height), height, smallest_change)
        finest = self.steps * 2.0 ** -np.maximum(self.levels - 1, 0)
        still &= self.estimates.analytic != 0
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return np.where(still, fd.ERROR_BAR_FACTOR * height / finest, 0.0)

    def flat(self) -> np.ndarray:
        """Positions of the probes whose every value so far equals the loss at the point exactly."""
        seen = np.isfinite(self.values)
        same = np.where(seen, self.values == self.f0, True)
        return np.flatnonzero(np.all(same, axis=1) & np.any(seen, axis=1))

    def assume_noise(self, sigma: float) -> None:
        """Continue with the loss's noise at least `sigma` (the estimates so far are rescaled)."""
        if sigma > self.sigma:
            self.sigma = sigma
            if self.estimates is not None:
                self.estimates = fd.rescale_noise(self.estimates, sigma)

    def _descend_together(self, active: np.ndarray, minimum: np.ndarray, until: int) -> None:
        while len(active) and self.levels[active[0]] < until:
            level = int(self.levels[active[0]])
            columns = slice(2 * level, 2 * level + 2)
            self.values[active, columns], self.predicted[active, columns], self.displacement[active, columns] = (
                self.evaluate_level(active, level)
            )
            self.levels[active] = level + 1
            if level == 0:
                continue
            used = slice(0, 2 * level + 2)
            estimates = self.adjust(
                fd.finite_differences(
                    self.method, self.f0, self.values[active, used], self.predicted[active, used],
                    self.displacement[active, used], self.steps[active], self.sigma,
                    rounding=self.rounding, first_order=self.first_order, spacing=self.spacing[active],
                ),
                active,
            )  # fmt: skip
            if estimates.kink is not None:
                self.kinked[active] |= estimates.kink
                newly_clear = self.kinked[active] & (self.cleared[active] == 0) & estimates.settled
                self.cleared[active[newly_clear]] = level + 1
                estimates = replace(estimates, kinked=self.kinked[active])
            self.estimates = estimates if self.estimates is None else fd.merge(self.estimates, estimates, active)
            decided = self.decided(estimates, active)
            # After a kink inside the step, the first window that looks clean is the one where the
            # kink just dropped below notice: trust only the second clean window in a row.
            settled = estimates.decided if estimates.settled is None else estimates.settled
            self.clean_streak[active] = np.where(settled, self.clean_streak[active] + 1, 0)
            recovering = self.kinked[active] & (self.clean_streak[active] == 1) & settled
            if estimates.at_point is not None:
                recovering &= ~estimates.at_point
            done = decided & ~recovering & (self.levels[active] >= minimum[active])
            active = active[~(done | (self.levels[active] >= self.deepest[active]))]


def run_ladder(
    evaluate_level: LevelEvaluator,
    method: fd.Method,
    f0: float,
    steps: np.ndarray,
    sigma: float,
    *,
    deepest: np.ndarray,
    decided: Callable[[fd.Estimates, np.ndarray], np.ndarray],
    adjust: Callable[[fd.Estimates, np.ndarray], fd.Estimates] = lambda e, which: e,
    plateau: float | None = None,
) -> tuple[fd.Estimates, np.ndarray]:
    """Descend every probe's ladder until `decided` (see `Ladder`); returns the estimates (with
    `Ladder.plateau_error(plateau)` in their bars, given a loss on a plateau's smallest change) and
    the number of levels each probe used."""
    ladder = Ladder(evaluate_level, method, f0, steps, sigma, deepest=deepest, adjust=adjust, decided=decided)
    ladder.descend(np.arange(len(ladder.steps)))
    assert ladder.estimates is not None
    if plateau is not None:
        return replace(ladder.estimates, error=ladder.estimates.error + ladder.plateau_error(plateau)), ladder.levels
    return ladder.estimates, ladder.levels
