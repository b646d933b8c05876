"""What one check works on, shared by its strategies: fixed when the check starts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..estimate._coordinate_probes import CoordinateEstimator
from ..estimate._noise_model import NoiseModel
from ..estimate._objective import Objective
from ..estimate._oracle import Oracle
from ..judge._elements import ElementJudge
from ..judge._taylor import TAYLOR_EVALUATIONS, taylor_slope
from ..params._params import Params
from ._analytic import LowPrecision
from ._options import Options
from ._progress import Progress


@dataclass(frozen=True)
class CheckContext:
    """The pieces of one check. Only `notes` grows and `noise` may rise while it runs.

    objective : the loss at points (in float64 under a `shadow` reference), counting evaluations.
    user_params : the parameters as the user gave them (names, shapes, dtypes of the gradient).
    analytic : the flat gradient under test.
    f0 : the loss at the point.
    options : the validated options.
    noise : the loss's noise model.
    estimator : numerical derivatives along coordinates.
    judge : per-element codes against the error bars.
    rng : the check's random stream (seeded by `options.seed`).
    notes : what the report will say besides the verdict.
    progress : the progress line.
    oracle : an exact forward-mode reference, when the user gave one.
    reference : what the numerical side differentiates ("native", "float64" or "forward").
    precise : under the float64 reference, `grad` evaluated in float64 (flat), else None.
    low_precision : under the float64 reference, `grad` in its own precision against `precise`
        (the rounding allowance in the estimator's `spread`, the elements beyond it), else None.
    """

    objective: Objective
    user_params: Params
    analytic: np.ndarray
    f0: float
    options: Options
    noise: NoiseModel
    estimator: CoordinateEstimator
    judge: ElementJudge
    rng: np.random.Generator
    notes: list[str]
    progress: Progress
    oracle: Oracle | None = None
    reference: str = "native"
    precise: np.ndarray | None = None
    low_precision: LowPrecision | None = None

    @property
    def params(self) -> Params:
        """The parameters as the loss is evaluated."""
        return self.objective.params

    @property
    def nfev(self) -> int:
        """Loss evaluations so far (and the oracle's, when there is one)."""
        return self.objective.nfev + (self.oracle.nfev if self.oracle is not None else 0)

    def affords(self, evaluations: int) -> bool:
        return self.options.budget.affords(self.objective.nfev, evaluations)

    def taylor_slope(self, error_direction: np.ndarray, indices: np.ndarray) -> float | None:
        """The Taylor-remainder slope along the error at the flat positions `indices`, when the
        budget affords it."""
        if not self.affords(TAYLOR_EVALUATIONS):
            return None
        eps = float(self.judge.eps[indices].max())
        return taylor_slope(self.objective, self.analytic, self.f0, self.noise.sigma, eps, error_direction, indices)
