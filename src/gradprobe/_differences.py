"""The Estimator: numerical directional derivatives with error bars.

Every probe evaluates the loss at ``x ± t w`` and ``x ± t/2 w`` (``w`` the probe's direction,
``t`` its step). From these five values (with the shared ``f(x)``):

* ``D(t)`` and ``D(t/2)``, central differences at two steps, and Richardson's extrapolation
  ``(4 D(t/2) - D(t)) / 3``, which cancels the ``t**2`` term;
* a truncation bound ``|D(t) - D(t/2)| / 3`` (the error of ``D(t/2)``; the extrapolated value's
  error is smaller still, so the bound is conservative), and a round-off bound from the loss's
  measured noise ``sigma / t``;
* the one-sided slopes at ``t/2`` on each side, used by the Judge to recognise kinks.

Points are rounded to the parameters' dtype before the loss sees them, and the *analytic* side
is compared through the same rounded displacements, so float32 and float16 rounding of the
perturbed points does not masquerade as a gradient error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["central", "richardson", "complex"]
METHODS: tuple[str, ...] = ("central", "richardson", "complex")

#: Multipliers of the step ``t`` at which a finite-difference probe evaluates the loss.
OFFSETS = np.array([1.0, -1.0, 0.5, -0.5])

#: Disagreements are judged against this many times the estimated error.
CONFIDENCE = 4.0

# Standard deviation of each estimate per unit of (sigma / t), for iid noise of size sigma.
_NOISE_GAIN = {"central": np.sqrt(2.0), "richardson": np.sqrt(65.0 / 18.0)}


@dataclass(frozen=True)
class Estimates:
    """Numerical and analytic directional derivatives for a batch of probes.

    All fields are arrays with one entry per probe, in units of the derivative along the probe's
    direction (for a coordinate probe, the gradient element itself).
    """

    numeric: np.ndarray
    analytic: np.ndarray
    error: np.ndarray  # CONFIDENCE x (truncation + round-off)
    truncation: np.ndarray
    roundoff: np.ndarray
    right: np.ndarray  # one-sided slope on the + side at the smallest step
    left: np.ndarray  # one-sided slope on the - side

    @property
    def finite(self) -> np.ndarray:
        return np.isfinite(self.numeric) & np.isfinite(self.error)


def finite_differences(
    method: Method,
    f0: float,
    values: np.ndarray,
    predicted: np.ndarray,
    displacement: np.ndarray,
    step: np.ndarray,
    sigma: float,
) -> Estimates:
    """Combine loss values at the `OFFSETS` points of each probe into estimates with error bars.

    Parameters
    ----------
    values : (n, 4) array
        The loss at ``x + OFFSETS[k] * step * w`` (after rounding to the parameters' dtype).
    predicted : (n, 4) array
        The analytic gradient's prediction of each change, ``g . (p_k - x)``.
    displacement : (n, 4) array
        Signed length of each rounded displacement ``p_k - x`` along ``w`` (in units of ``w``).
    step : (n,) array
        The nominal step ``t`` of each probe.
    sigma : float
        Standard deviation of the loss's noise.
    """
    t = np.asarray(step, dtype=float)
    wide = (values[:, 0] - values[:, 1]) / (2 * t)
    narrow = (values[:, 2] - values[:, 3]) / t
    wide_a = (predicted[:, 0] - predicted[:, 1]) / (2 * t)
    narrow_a = (predicted[:, 2] - predicted[:, 3]) / t
    wide_u = (displacement[:, 0] - displacement[:, 1]) / (2 * t)
    narrow_u = (displacement[:, 2] - displacement[:, 3]) / t
    if method == "richardson":
        numeric, analytic, unit = ((4 * n - w) / 3 for n, w in ((narrow, wide), (narrow_a, wide_a), (narrow_u, wide_u)))
    else:
        numeric, analytic, unit = narrow, narrow_a, narrow_u
    # The analytic terms cancel rounding differences between the two steps' displacements.
    truncation = np.abs((wide - narrow) - (wide_a - narrow_a)) / 3
    roundoff = _NOISE_GAIN[method] * sigma / t
    with np.errstate(invalid="ignore", divide="ignore"):
        right = (values[:, 2] - f0) / displacement[:, 2]
        left = (values[:, 3] - f0) / displacement[:, 3]
        return Estimates(
            numeric=numeric / unit,
            analytic=analytic / unit,
            error=CONFIDENCE * (truncation + roundoff) / np.abs(unit),
            truncation=truncation / np.abs(unit),
            roundoff=roundoff / np.abs(unit),
            right=right,
            left=left,
        )


def complex_step(values: np.ndarray, step: np.ndarray, slope: np.ndarray) -> Estimates:
    """Complex-step derivatives ``Im f(x + i t w) / t``: no subtractive cancellation at all.

    The only error is the evaluation's own relative rounding, a few ulps of the result.
    """
    numeric = np.imag(values) / step
    roundoff = 16 * np.finfo(np.float64).eps * np.abs(numeric)
    nan = np.full_like(numeric, np.nan)
    return Estimates(
        numeric=numeric,
        analytic=np.asarray(slope, dtype=float),
        error=CONFIDENCE * roundoff,
        truncation=np.zeros_like(numeric),
        roundoff=roundoff,
        right=nan,
        left=nan,
    )


def element_scales(params) -> np.ndarray:
    """Each parameter's natural size: its magnitude, but never below its tensor's RMS.

    A parameter at zero (a bias at initialisation) still gets a sensible step from its
    neighbours; a tensor that is all zeros falls back to the RMS of all parameters, then to 1.
    """
    values = params.values
    overall = float(np.sqrt(np.mean(values**2))) or 1.0
    scales = np.empty_like(values)
    for leaf in params.leaves:
        part = values[leaf.slice]
        rms = float(np.sqrt(np.mean(part**2))) or overall
        scales[leaf.slice] = np.maximum(np.abs(part), rms)
    return scales


def choose_steps(params, sigma: float, f0: float, gradient: np.ndarray) -> np.ndarray:
    """Finite-difference step per parameter, balancing truncation against round-off.

    For central differences the truncation error grows like ``(h/s)**2`` and the round-off like
    ``sigma / (h g)``; they balance at ``h/s = (sigma / (s g))**(1/3)``, with ``s`` the parameter's
    scale and ``g`` its tensor's typical gradient. The step never goes below 8 ulps of the
    parameter, so ``x ± h/2`` stays exactly representable and distinct.
    """
    scales = element_scales(params)
    steps = np.empty_like(scales)
    for leaf in params.leaves:
        s = scales[leaf.slice]
        g_typical = float(np.sqrt(np.mean(gradient[leaf.slice] ** 2)))
        signal = np.maximum(s * g_typical, abs(f0) * 1e-3) if g_typical > 0 else np.full_like(s, abs(f0) or 1.0)
        eps = float(np.finfo(leaf.dtype).eps)
        eta = np.clip(sigma / np.maximum(signal, np.finfo(float).tiny), eps, 1e-3)
        steps[leaf.slice] = np.cbrt(eta) * s
        x = params.values[leaf.slice].astype(leaf.dtype)
        steps[leaf.slice] = np.maximum(steps[leaf.slice], 8 * np.spacing(np.abs(x)).astype(float))
    return steps
