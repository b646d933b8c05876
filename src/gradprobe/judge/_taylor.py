"""The Taylor-remainder test: how fast ``L(x + t v) - L(x) - g.(t v)`` shrinks tells a wrong `g`.

The remainder shrinks like t**2 when `g` is right along `v` and like t when it is wrong, once t is
small enough for the error's linear term to beat the curvature. A failing tensor's report carries
the slope, an independent second opinion on the verdict.
"""

from __future__ import annotations

import numpy as np

from ..estimate import _differences as fd
from ..estimate._ladder import round_at
from ..estimate._objective import Objective
from ._verdict import ANALYTIC_ULPS

#: The largest move (a fraction of each parameter's scale) and how many steps, each a quarter of
#: the last: a span of 4**7, wide enough to see both regimes on ordinary losses.
TAYLOR_MOVE, TAYLOR_STEPS = 0.05, 8
#: Loss evaluations one slope costs.
TAYLOR_EVALUATIONS = TAYLOR_STEPS


def taylor_slope(
    objective: Objective,
    analytic: np.ndarray,
    f0: float,
    sigma: float,
    eps: float,
    error_direction: np.ndarray,
    indices: np.ndarray,
) -> float | None:
    """Slope of log|L(x + t v) - L(x) - g.(t v)| against log t, along the error's direction.

    `error_direction` is over the flat positions `indices` (a whole tensor's, or the few known
    wrong elements of a large tensor: the same points, without moving millions); `sigma` is the
    loss's noise and `eps` the analytic side's rounding. The slope is read off the three smallest
    steps whose remainder still stands clear of the noise; None when fewer than three do.
    """
    size = np.max(np.abs(error_direction))
    if not np.isfinite(size) or size == 0:
        return None
    params = objective.params
    scales = fd.element_scales(params)[indices]
    v = error_direction / size * scales * TAYLOR_MOVE
    x = params.values[indices]
    moved = [round_at(params, indices, x + t * v) for t in 4.0 ** -np.arange(TAYLOR_STEPS)]
    values = objective.evaluate([(indices, m) for m in moved])
    with np.errstate(invalid="ignore", over="ignore"):
        predicted = np.array([analytic[indices] @ (m - x) for m in moved])
        remainders = np.abs(values - f0 - predicted)
        lengths = np.array([np.linalg.norm(m - x) for m in moved])
        # Noise of the two loss values and rounding of the prediction.
        floor = fd.ERROR_BAR_FACTOR * (np.sqrt(2) * sigma + ANALYTIC_ULPS * eps * np.abs(predicted))
        usable = np.flatnonzero(np.isfinite(remainders) & (remainders > floor) & (lengths > 0))
    if len(usable) < 3:
        return None
    smallest = usable[-3:]
    return float(np.polyfit(np.log(lengths[smallest]), np.log(remainders[smallest]), 1)[0])
