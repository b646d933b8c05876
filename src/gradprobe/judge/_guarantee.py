"""The detection guarantee of the randomized strategies, and where its numbers come from.

Random directions ("directional"). A probe of a block of ``m`` elements moves along
``w = v * s / sqrt(m)``: ``v`` has independent elements uniform on ``[-sqrt(3), sqrt(3)]`` (mean 0,
variance 1), ``s`` are the elements' natural sizes times the step (see
`gradprobe.strategies._direction_probes`). Let ``e`` be the error of the analytic gradient in the
block. The probe misses it only if ``|e . w| <= tau = 2 err + floor`` (the estimate itself may be
off by ``err``). Write ``e . w = a . u`` with ``u`` uniform on the cube ``[-1/2, 1/2]**m`` and
``a = sqrt(12) e s / sqrt(m)``, ``||a|| >= sqrt(12) s_min ||e|| / sqrt(m)``. The density of
``a . u`` is the volume of the cube's section perpendicular to ``a``, divided by ``||a||``; every
such section has volume at most ``sqrt(2)`` (K. Ball, "Cube slicing in R^n", 1986; the central one
is the largest, by Brunn's principle). Hence ``P(|e . w| <= tau) <= 2 sqrt(2) tau / ||a||``, that is

    P(miss) <= sqrt(2/3) tau sqrt(m) / (s_min ||e||) = r / delta,   delta = ||e|| / ||g||,

whatever the error's pattern (a Gaussian ``v`` would give ``sqrt(2/pi)``, 2% less): no
cancellation can hide it systematically, unlike all-positive directions (pytorch#59615). A
direction through several tensors keeps the bound for each: adding independent terms never makes
a density larger. `direction_threshold` is that ``r``. Directions are independent, so ``K`` of
them miss with probability at most ``prod_k min(1, r_k / delta)``; the *resolution* at a
confidence ``c`` is the ``delta`` where that bound equals ``1 - c`` (`resolution_at`).

Sampled coordinates ("sample"). When a fraction ``f`` of a tensor's elements is wrong, each of
``k`` elements drawn from it at random is a right one with probability at most ``1 - f`` (exactly
``1 - f`` with replacement, less without), so all ``k`` miss with probability at most
``(1 - f)**k``; the resolution at ``c`` is the ``f`` where that equals ``1 - c``
(`sample_resolution`).

`gradprobe.report._types.Guarantee` stores the thresholds ``r_k`` (or the counts ``k``) of a check, and
its `miss_probability` evaluates these two bounds from them; this module is where they are
derived, and the one place the strategies take their numbers from.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

#: ``2 sqrt(2) / sqrt(12)``: the bound on ``P(|e . w| <= tau) * s_min ||e|| / (tau sqrt(m))`` for a
#: direction of independent, unit-variance uniform elements (see the module).
MISS_CONSTANT = math.sqrt(2 / 3)
#: ``log`` of the largest float: a resolution past it is no guarantee.
_LOG_MAX = math.log(sys.float_info.max)


def direction_threshold(tau: float, elements: int, smallest_step: float, gradient_norm: float) -> float:
    """The relative error size ``r`` that one direction misses with probability at most
    ``min(1, r / delta)``: ``sqrt(2/3) tau sqrt(m) / (s_min ||g||)``.

    Parameters
    ----------
    tau : the disagreement along the direction that the probe cannot tell from zero
        (``2 err + floor``).
    elements : ``m``, the elements of the tensor that the direction moves.
    smallest_step : ``s_min``, the smallest displacement of one of those elements along it.
    gradient_norm : ``||g||``, the norm of the tensor's gradient that ``delta`` is relative to.

    Infinite (no relative guarantee) when `tau` is not finite, or the gradient is zero or the
    product ``s_min ||g||`` underflows.

    Examples
    --------
    >>> direction_threshold(1e-9, 6, 1.0, 2.0) == math.sqrt(2 / 3) * 1e-9 * math.sqrt(6) / 2.0
    True
    >>> direction_threshold(1e-9, 6, 1e-200, 1e-200), direction_threshold(math.nan, 6, 1.0, 1.0)
    (inf, inf)
    """
    denominator = smallest_step * gradient_norm  # 0 for a zero gradient, or by underflow
    if not math.isfinite(tau) or not denominator > 0:
        return math.inf
    return MISS_CONSTANT * tau * math.sqrt(elements) / denominator


def resolution_at(thresholds: Sequence[float], confidence: float) -> float:
    """Smallest relative error size ``delta`` with ``prod_k min(1, r_k / delta) <= 1 - confidence``.

    Examples
    --------
    >>> round(resolution_at([1e-9], 0.999), 15)   # one direction: r / (1 - c)
    1e-06
    >>> round(resolution_at([1e-9, 1e-9], 0.999999), 15)
    1e-06
    >>> resolution_at([], 0.9)
    inf
    >>> resolution_at([1e307], 0.999999)  # past the float range: no guarantee
    inf

    It inverts the bound that `Guarantee.miss_probability` evaluates:

    >>> from gradprobe.report._types import Guarantee
    >>> stated = Guarantee("directional", 0.999, 0.0, {"W": 2}, {"W": (3e-8, 5e-8)})
    >>> round(stated.miss_probability(resolution_at([3e-8, 5e-8], 0.999)), 12)
    0.001
    """
    r = sorted(float(x) for x in thresholds if math.isfinite(x))
    if not r:
        return math.inf
    q = 1.0 - confidence
    log_product = 0.0
    for j, rj in enumerate(r, start=1):
        log_product += math.log(rj) if rj > 0 else -math.inf
        if log_product == -math.inf:
            return 0.0
        log_delta = (log_product - math.log(q)) / j
        delta = math.exp(log_delta) if log_delta < _LOG_MAX else math.inf  # thresholds near 1e308
        upper = r[j] if j < len(r) else math.inf
        if rj <= delta <= upper:
            return delta
    return math.inf  # pragma: no cover - the loop always lands in one interval


def sample_resolution(probes: int, confidence: float) -> float:
    """Smallest fraction ``f`` of wrong elements with ``(1 - f)**probes <= 1 - confidence``.

    Examples
    --------
    >>> round(sample_resolution(10, 1 - 0.7**10), 12)   # 10 samples catch 30% wrong
    0.3
    >>> sample_resolution(0, 0.999) == sample_resolution(1, 0.999) == 0.999
    True
    """
    return 1 - (1 - confidence) ** (1 / max(1, probes))
