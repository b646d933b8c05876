"""The loss's noise during one check: measured once at the start, raised when the probes see more.

`estimate_noise` (`_noise`) is the pure difference-table maths; `NoiseModel` runs it along random
directions through the user's point, adds the spread of repeated calls, and owns the one noise
level every later error bar uses (`sigma`), with the notes that explain it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .. import _passes as passes
from ..params._params import Params
from . import _differences as fd
from ._ladder import round_at
from ._noise import POINTS, SPACING_RATIO, estimate_noise
from ._objective import LinePoints, Objective

#: Difference tables (one evaluation per point) behind the noise estimate of a full check; twice as
#: many for a loss of few parameters, whose rounding errors are the least random along a line.
NOISE_TABLES, FEW_PARAMETERS = 3, 16
#: The narrowest noise table moves each parameter by at least this many ulps.
SPACING_ULPS = 32


@dataclass(frozen=True)
class NoisePlan:
    """How the noise is measured: `tables` difference tables of `points` points and `repeats`
    calls at the point itself. `tables=None`: `NOISE_TABLES`, doubled for few parameters."""

    tables: int | None = None
    points: int = POINTS
    repeats: int = 2

    def table_count(self, size: int) -> int:
        if self.tables is not None:
            return self.tables
        return 2 * NOISE_TABLES if size <= FEW_PARAMETERS else NOISE_TABLES

    def evaluations(self, size: int) -> int:
        """Loss evaluations the measurement takes (the point itself is known already)."""
        return self.repeats + self.table_count(size) * (self.points - 1)


#: A full check's plan, and the lighter one of the directional strategy: one table of 7 points and
#: one repeat call (its evaluations are half of a large model's verdict cost).
FULL_NOISE, DIRECTIONAL_NOISE = NoisePlan(), NoisePlan(tables=1, points=7, repeats=1)


class NoiseModel:
    """The noise level of the loss in one check (`sigma`), and the tensors along which it has no
    derivative at this precision (`ragged_tensors`: it jumps about like noise at every spacing
    tried, such as a loss with a jump in one input sitting right at it)."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.sigma = 0.0
        self.ragged_tensors: tuple[str, ...] = ()
        self.repeat_spread = 0.0  # how much identical calls of the loss differ
        # `raise_to`'s: the difference tables' own sigma and name, and where its one note is.
        self._tables: tuple[float, str] | None = None
        self._note_at: int | None = None

    def measure(
        self, objective: Objective, analytic: np.ndarray, f0: float, rng: np.random.Generator, plan: NoisePlan,
        *, per_tensor: bool = True,
    ) -> float:
        """ECnoise along random directions, or the spread of repeated calls if that is larger.

        When the loss looks ragged along directions through every tensor, and `per_tensor` allows the
        extra tables (no budget to keep), each tensor gets tables of its own: one input sitting on a
        jump leaves the others their derivative.
        """
        params = objective.params
        start = [(np.array([], dtype=int), np.array([]))]
        if objective.vectorized:
            # One batch each, as the point's own value was made: a batch of several (vmap) can round
            # otherwise than a batch of one, which would read as a loss that is not deterministic.
            repeated = np.concatenate([objective.evaluate(start) for _ in range(plan.repeats)])
        else:
            repeated = objective.evaluate(start * plan.repeats)
        repeat_spread = self.repeat_spread = float(np.max(np.abs(repeated - f0)))
        eps = max(float(np.finfo(leaf.dtype).eps) for leaf in params.leaves)
        all_double = all(leaf.dtype == np.float64 for leaf in params.leaves)
        lines = [_line(objective, analytic, rng, k, all_double) for k in range(plan.table_count(params.size))]
        # Narrow tables: noise does not depend on the spacing, but a wide table moving every
        # parameter of a relu network crosses kinks, which inflate the estimate.
        spacing = max(eps**0.7, SPACING_ULPS * eps * SPACING_RATIO)
        # Rounding the result alone costs half an ulp (a whole one for a subnormal result).
        floor = max(0.5 * eps * abs(f0), float(np.spacing(abs(f0))))
        estimate = estimate_noise(lines, f0, spacing, floor=floor, points=plan.points)
        self.sigma = max(estimate.sigma, repeat_spread)
        self.ragged_tensors = tuple(leaf.name for leaf in params.leaves) if estimate.ragged else ()
        if estimate.ragged and per_tensor and len(params.leaves) > 1:
            ragged, sigmas, reliable = [], [], []
            for leaf in params.leaves:
                own = [_line(objective, analytic, rng, k, all_double, leaf.slice) for k in range(plan.table_count(leaf.size))]
                found = estimate_noise(own, f0, spacing, floor=floor, points=plan.points)
                if found.ragged:
                    ragged.append(leaf.name)
                else:
                    sigmas.append(found.sigma)
                    reliable.append(found.reliable)
            if sigmas:
                self.sigma = max(*sigmas, repeat_spread)
                self.ragged_tensors = tuple(ragged)
                estimate = replace(estimate, ragged=False, reliable=all(reliable))
                if ragged:
                    self.notes.append(
                        f"the loss jumps about like noise at every spacing tried along {', '.join(ragged)}, down to a "
                        "few ulps of the parameters: no derivative to compare there at this precision; the other "
                        "tensors are judged on the noise along their own directions."
                    )
        if repeat_spread > 0:
            self.notes.append(
                f"`loss` is non-deterministic: identical calls differ by up to {repeat_spread:.2e} "
                f"(noise {self.sigma:.2e} in all); that noise is folded into the error bars."
            )
        if estimate.ragged and repeat_spread > 0:
            self.notes.append(
                "the loss jumps about like noise at every spacing tried, as identical calls do: its randomness hides "
                "the derivative (fix its seed, or make it deterministic)."
            )
        elif estimate.ragged:
            self.notes.append(
                "the loss jumps about like noise at every spacing tried, down to a few ulps of the parameters: "
                "it has no derivative to compare at this precision (use float64 or smaller parameters)."
            )
        elif not estimate.reliable:
            self.notes.append("the loss's noise level could not be measured reliably; assumed rounding only.")
        return self.sigma

    @property
    def ragged(self) -> bool:
        """Whether some tensor has no derivative at this precision."""
        return bool(self.ragged_tensors)

    def raise_to(self, measured: float, where: str) -> bool:
        """Take the larger noise the probes measured `where` ("difference table(s)" it beats); True
        when it was larger."""
        if not measured > self.sigma:
            return False
        if self._tables is None:
            self._tables = (self.sigma, where)
        before, where = self._tables  # one note, against the tables' own measure, however often raised
        if f"{measured:.2e}" != f"{before:.2e}":  # a rise too small to print says nothing
            note = (
                f"the probes show more noise ({measured:.2e}) than the loss's {where} ({before:.2e}); "
                "the error bars use the larger."
            )
            if self._note_at is None:
                self._note_at = len(self.notes)
                self.notes.append(note)
            else:
                self.notes[self._note_at] = note
        self.sigma = measured
        return True


def _line(
    objective: Objective, analytic: np.ndarray, rng: np.random.Generator, k: int, all_double: bool,
    within: slice | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """The loss along the `k`-th random line through the point (moving only the flat positions
    `within`, when given), as a function of the offsets."""
    params: Params = objective.params
    # Random signs and lengths: points on a regular grid can round in a regular pattern, which
    # hides the noise from a difference table. Lengths uniform on [0.5, 1.5), signs at random,
    # both from one uniform draw u: 2u - 1, pushed 0.5 away from zero, that is 2u - 1.5 below
    # u = 1/2 and 2u - 0.5 from there (exact in float64). Drawn into the check's work vectors:
    # this runs over every parameter of a model of millions, where fresh vectors cost page faults.
    direction = objective.work(k + 1, params.size)[k][: params.size]
    rng.random(out=direction)
    passes.multiply(direction, 2.0, out=direction)
    passes.subtract(direction, 1.5, out=direction)  # 2u - 1.5 >= -0.5 where u >= 1/2
    passes.step_up(direction, -0.5, out=direction)
    passes.multiply(direction, fd.element_scales(params), out=direction)
    if within is not None:
        direction[: within.start] = 0.0
        direction[within.stop :] = 0.0
    everything = slice(0, params.size)
    indices = None if all_double else np.arange(params.size)  # only to round low-precision points

    def evaluate(offsets: np.ndarray) -> np.ndarray:
        if all_double:
            # The points are on the table's grid already: nothing to round, nothing to shift.
            return objective.evaluate(LinePoints(params.values, [(everything, direction, offsets)]))
        intended = [params.values + o * direction for o in offsets]
        moved = [round_at(params, indices, p) for p in intended]
        values = objective.evaluate([(indices, m) for m in moved])
        # Low-precision parameters round the table's points off its grid; the analytic gradient's
        # linear model moves each value back to its grid point, so that the rounding of the points
        # is not mistaken for noise of the loss.
        with np.errstate(invalid="ignore", over="ignore"):
            shift = np.array([analytic @ (m - p) for m, p in zip(moved, intended)])
        return values - np.where(np.isfinite(shift), shift, 0.0)

    return evaluate
