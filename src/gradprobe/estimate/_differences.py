"""The Estimator: numerical directional derivatives with error bars.

A probe evaluates the loss on a *ladder* of symmetric points ``x ± t_k w`` with ``t_k = t / 2**k``
(level ``k``; ``w`` is the probe's direction, ``t`` its step) plus the shared ``f(x)``. Every
probe gets levels 0, 1 and 2; the checker adds finer levels one at a time, only to the probes
that need them (`_probes.Ladder`). The estimate comes from the last three levels of the ladder
(the *window*; two for ``method="central"``):

* central differences ``D_k = (f(x + t_k w) - f(x - t_k w)) / (2 t_k)``, combined by Richardson
  extrapolation: ``(64 D_2 - 20 D_1 + D_0) / 45``, or ``(4 D_1 - D_0) / 3`` from the top two
  levels where that bar is smaller (mild curvature: half the round-off);
* a **truncation** bound: the change between the estimates of the two finest orders
  (``|R_0 - R_1| / 15``, the error of the finer two-level extrapolation ``R_1``; ``|D_0 - D_1| / 3``,
  the error of ``D_1``), which over-states the error of the estimate actually used; for a
  coordinate whose ``D_k`` change by half, not a quarter, from level to level (a loss smooth to
  first order only there), the finest change ``|D_1 - D_2|``;
* a **round-off** bound: the standard deviation the estimate inherits from the loss's noise
  ``sigma``, computed exactly from the weights the estimate puts on each evaluation;
* **jumps**: the one-sided slopes ``(f(x ± t_k w) - f(x)) / ±t_k`` differ by ``f'' t_k`` on a
  smooth function; combinations of the levels that cancel that leave the jump of the derivative,
  zero unless a kink (relu at 0, abs at 0, a max with a tie) sits inside the step. Any of them
  larger than `ROUGH` times its own noise marks the window *rough*: its central differences mix
  the two sides, and the checker halves the step until the kink is outside it, or the same jump
  shows in three successive windows (*at the point*), or the probe is at its finest level.

The error bar is `ERROR_BAR_FACTOR` times truncation plus round-off, plus two terms that show near a
minimum, where a tiny derivative meets a large curvature: what unequal rounded steps either side add
(*lopsidedness*), and how far the parameter's own rounding moves the derivative (*conditioning*, see
`finite_differences`' `spacing`). All quantities come from the loss's values over the
displacements that the rounded points really have; the gradient under test enters only as the
analytic value the estimate is compared with, so two checks of different gradients at one point
see exactly the same numerical side.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from .. import _passes as passes

METHODS = ("richardson", "central", "complex")
Method = Literal["richardson", "central", "complex"]

#: An error bar is this many times the estimated error (truncation bound plus round-off, the
#: latter one standard deviation of the noise in the difference). Why 4: with Gaussian noise and a
#: truncation bound that holds, a correct element falls outside its bar with probability
#: P(|Z| > 4) = 6.3e-5; over a check of n independent elements the chance of any false alarm is at
#: most 6.3e-5 * n (0.3% for the seed's 47 parameters, 6% for 1000). Measured: 0 false alarms on
#: the 23 correct programs of the bug suite in float64 and float32 (benchmarks/RESULTS.md), where
#: the analytic rounding floor and the noise estimate's own margin add to the bar. Not the user's
#: `confidence=` (a probability, for the randomized strategies' guarantee).
ERROR_BAR_FACTOR = 4.0
#: Levels 0 and 1 of the ladder: what every finite-difference probe starts with.
OFFSETS = np.array([1.0, -1.0, 0.5, -0.5])
#: The finest level a probe may reach: its step is then ``t / 2**(MAX_LEVELS - 1)``.
MAX_LEVELS = 12

# Window weights on the central differences D_k of a window's levels (coarse to fine).
_ESTIMATE = {
    ("central", 2): np.array([0.0, 1.0]),
    ("richardson", 2): np.array([-1.0, 4.0]) / 3,
    ("richardson", 3): np.array([1.0, -20.0, 64.0]) / 45,
}
# Weights on the same D_k whose absolute value bounds the truncation error.
_TRUNCATION = {
    2: np.array([1.0, -1.0]) / 3,  # |D_0 - D_1| / 3: error of D_1
    3: np.array([-1.0, 5.0, -4.0]) / 45,  # |R1_0 - R1_1| / 15: error of R1_1
}
# Weights on the one-sided gaps K_k = right_k - left_k that cancel the smooth part and leave the
# jump of the derivative: K = f'' t + O(t^3) cancels between two levels, K = f'' t + f'''' t^3 / 12
# between three. Each row is one jump estimate; a kink at some distance inside the step can make
# one of them vanish but not all three at once.
_JUMPS = {
    2: np.array([[-1.0, 2.0]]),
    3: np.array([[1.0, -10.0, 16.0], [-7.0, 14.0, 0.0], [0.0, -7.0, 14.0]]) / 7,
}
#: A jump estimate beyond this many standard deviations of its noise marks a kink in the step.
#: Deliberately low: at a kink within the step the estimate's error reaches half the jump, and
#: with the estimates of a single window only below ~1.8 standard deviations is an undetected
#: jump's effect always inside the error bar (a false flag costs one finer level, nothing more).
ROUGH = 1.5
#: A kink is named (not just suspected) only when its jump exceeds this many standard deviations
#: of its noise in two successive windows: noise alone almost never does that.
KINK = 3.0
#: Jumps of two successive windows within this fraction of each other (beyond their noise) are
#: the same kink, at the point: finer steps would only see it again.
SAME_JUMP = 0.25


def level_offsets(level: int) -> np.ndarray:
    """Offsets (in units of the probe's step) of ladder level `level`: ``± 2**-level``."""
    return np.array([2.0**-level, -(2.0**-level)])


def window_levels(method: Method) -> int:
    """How many of the finest levels an estimate uses."""
    return 3 if method == "richardson" else 2


@dataclass(frozen=True)
class Estimates:
    """Numerical and analytic directional derivatives for a batch of probes, with error bars.

    All fields are arrays with one entry per probe, in units of the derivative along the probe's
    direction (for a coordinate probe, the gradient element itself).

    Attributes
    ----------
    numeric, analytic : the numerical estimate and the analytic gradient along the direction.
    error : the error bar, ``ERROR_BAR_FACTOR * (truncation + roundoff)``.
    truncation, roundoff : the two parts of the estimated error.
    right, left : one-sided derivatives, ``numeric ± jump / 2``.
    jump : right minus left derivative, extrapolated to a zero step (0 on a smooth function).
    rough : the jump exceeds `ERROR_BAR_FACTOR` times its noise: a kink inside the step.
    settled : finite, not rough, and round-off dominated: a finer step would not help.
    step : the largest step of the window the estimate comes from.
    at_point : rough, with the same jump as the two windows above: the kink is at the point.
    kink : a jump seen in this window and the one above that did not shrink like a smooth part:
        a kink within the step, at the point or not.
    significance : the largest jump estimate over the level that marks a kink (rough above 1).
    noise_samples : (n, 2) combinations of the window's values that cancel the smooth part up to
        fourth order, each scaled to have the loss's noise as standard deviation: a measure of
        the noise where the estimate was made (NaN for windows of two levels).
    noise : the loss's noise assumed for each probe (the measured one, or more for a probe whose
        values are so large that their own rounding exceeds it).
    kinked : the probe saw `kink` at some level of its ladder, this window or a coarser one
        (set by `_probes.Ladder`).
    """

    numeric: np.ndarray
    analytic: np.ndarray
    error: np.ndarray
    truncation: np.ndarray
    roundoff: np.ndarray
    right: np.ndarray
    left: np.ndarray
    jump: np.ndarray | None = None
    rough: np.ndarray | None = None
    settled: np.ndarray | None = None
    step: np.ndarray | None = None
    at_point: np.ndarray | None = None
    kink: np.ndarray | None = None
    significance: np.ndarray | None = None
    noise_samples: np.ndarray | None = None
    noise: np.ndarray | None = None
    kinked: np.ndarray | None = None

    @property
    def finite(self) -> np.ndarray:
        """The loss gave an estimate: its value is finite (its error bar may be infinite: a step
        so small that the loss's noise over it overflows, which leaves the element unresolved)."""
        return np.isfinite(self.numeric) & ~np.isnan(self.error)

    @property
    def is_rough(self) -> np.ndarray:
        return np.zeros(len(self.numeric), bool) if self.rough is None else self.rough

    @property
    def decided(self) -> np.ndarray:
        """Settled, or at a kink at the point: a finer step cannot change the verdict."""
        settled = self.finite if self.settled is None else self.settled
        return settled if self.at_point is None else settled | self.at_point

    def take(self, where: np.ndarray) -> Estimates:
        """The estimates of the probes selected by `where` (indices or a mask)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Estimates(**{k: None if v is None else np.asarray(v)[where] for k, v in fields.items()})


def merge(base: Estimates, update: Estimates, where: np.ndarray) -> Estimates:
    """`base` with the probes at positions `where` replaced by `update`'s."""
    fields = {}
    for name in base.__dataclass_fields__:
        old, new = getattr(base, name), getattr(update, name)
        if old is None or new is None:
            fields[name] = None
            continue
        column = np.array(old)
        column[where] = new
        fields[name] = column
    return Estimates(**fields)


def stack(parts: list[Estimates]) -> Estimates:
    """The probes of every part, one after the other (a field any part lacks is dropped)."""
    columns = {}
    for name in Estimates.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        columns[name] = None if any(v is None for v in values) else np.concatenate([np.asarray(v) for v in values])
    return Estimates(**columns)


def finite_differences(
    method: Method,
    f0: float,
    values: np.ndarray,
    predicted: np.ndarray,
    displacement: np.ndarray,
    step: np.ndarray,
    sigma: float,
    *,
    rounding: float = 0.0,
    first_order: bool = False,
    spacing: np.ndarray | float = 0.0,
) -> Estimates:
    """Estimates with error bars from the ladder each probe has so far.

    Parameters
    ----------
    method : {"richardson", "central"}
    f0 : float
        The loss at the point.
    values : (n, 2 L) array
        The loss at ``x ± t 2**-k w`` for levels ``k = 0 .. L-1``, columns ordered
        ``+level 0, -level 0, +level 1, -level 1, ...`` (``L >= 2``).
    predicted : (n, 2 L) array
        The analytic gradient's prediction of each change, ``g . (p - x)``.
    displacement : (n, 2 L) array
        Signed length of each rounded displacement ``p - x`` along ``w`` (in units of ``w``).
    step : (n,) array
        The step ``t`` of level 0.
    sigma : float
        Standard deviation of the loss's noise.
    rounding : float
        Relative rounding of a loss value (half the loss's machine epsilon): each probe's noise is
        at least this much of the largest value it saw, which matters when the loss grows by
        orders of magnitude over the step (a loss that is zero at the point, say).
    spacing : (n,) array or float
        Per probe, how finely its parameter can be resolved (one ulp of its scale, see
        `_ladder.parameter_spacing`). A derivative computed in floating point is a sum of terms
        that near a minimum cancel: ``x[i+1] - x[i]**2`` of a Rosenbrock function at ``x = 1``
        carries the rounding of ``x**2``, so both the analytic value and the loss's changes are
        off by up to the curvature times that spacing, ``|f''| spacing``, whatever the step (and
        the loss's rounding noise grows with the distance from the point, beyond what the noise
        tables measured there). Added to the error bar; away from a minimum, where the
        curvature is about the derivative over the parameter's scale, it is about an ulp of the
        derivative.
    first_order : bool
        Whether to look for central differences converging linearly in the step (a loss smooth
        to first order only at the point) and widen those bars. For coordinate probes: along a
        random direction through many elements the kinks crossed make convergence irregular, which
        the jump estimates judge instead.

    Examples
    --------
    The derivative of ``exp`` at 0 from three levels, with the loss's noise at 1e-16:

    >>> t = np.array([2e-4])
    >>> d = t * np.array([[1, -1, 0.5, -0.5, 0.25, -0.25]])
    >>> e = finite_differences("richardson", 1.0, np.exp(d), 0 * d, d, t, 1e-16)
    >>> bool(abs(e.numeric[0] - 1) <= e.error[0] < 1e-10), bool(e.settled[0])
    (True, True)
    """
    values, predicted, displacement = (np.asarray(a, dtype=float) for a in (values, predicted, displacement))
    levels = values.shape[1] // 2
    m = min(levels, window_levels(method))
    window = slice(2 * (levels - m), 2 * levels)
    top = np.asarray(step, dtype=float) * 2.0 ** -(levels - m)  # the window's largest step
    moved = displacement[:, window]
    # Everything in units of the window's step, so tiny or huge parameters neither underflow nor
    # overflow; noise per unit of sigma / top.
    unit_moved = moved / top[:, None]
    width = unit_moved[:, 0::2] - unit_moved[:, 1::2]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        sigma = np.maximum(sigma, rounding * np.max(np.abs(values[:, window]), axis=1, initial=abs(f0)))
        per_step = sigma / top
        # Secant slopes of the loss (D_k) and of the analytic model at each level.
        odd = (values[:, window][:, 0::2] - values[:, window][:, 1::2]) / (width * top[:, None])
        along = (predicted[:, window][:, 0::2] - predicted[:, window][:, 1::2]) / (width * top[:, None])
        c = _ESTIMATE[(method, m)]
        numeric, analytic = odd @ c, along @ c
        roundoff = per_step * np.sqrt((2 / width**2) @ c**2)
        truncation = np.abs(odd @ _TRUNCATION[m])
        # Rounded points sit at unequal distances a, b either side (by up to an ulp): each secant
        # slope is then off by f'' (a - b) / 2, which no finer step removes. Where the curvature is
        # large and the derivative tiny (near a minimum) that is more than the bars above.
        gaps = _slope_gaps(values[:, window] - f0, unit_moved, top)
        lopsided = np.abs(gaps * (unit_moved[:, 0::2] + unit_moved[:, 1::2]) / width)
        asymmetry = lopsided @ np.abs(c)
        # How far the parameter's own rounding moves the derivative (`spacing`): the curvature
        # 2 K / (a + b) at the window's coarsest level, times that spacing.
        curvature = np.nan_to_num(2 * gaps[:, 0] / (top * width[:, 0]), nan=0.0, posinf=0.0, neginf=0.0)
        conditioning = np.abs(curvature) * np.asarray(spacing, dtype=float)
        if m == 3:
            # Where the curvature is mild the two coarser levels alone give half the round-off;
            # the third level still guards them against kinks. Keep whichever bar is smaller.
            c2, t2 = np.append(_ESTIMATE[(method, 2)], 0.0), np.append(_TRUNCATION[2], 0.0)
            roundoff2 = per_step * np.sqrt((2 / width**2) @ c2**2)
            truncation2 = np.abs(odd @ t2)
            coarse = truncation2 + roundoff2 < truncation + roundoff
            numeric = np.where(coarse, odd @ c2, numeric)
            analytic = np.where(coarse, along @ c2, analytic)
            asymmetry = np.where(coarse, lopsided @ np.abs(c2), asymmetry)
            roundoff = np.where(coarse, roundoff2, roundoff)
            truncation = np.where(coarse, truncation2, truncation)
        # Only the loss's values decide the error bars and the kinks, never the gradient under test:
        # a different gradient then meets exactly the same numerical side.
        residual = values[:, window] - f0
        jumps, jump_unit = _jump_estimates(residual, unit_moved, top, _JUMPS[m])
        # The loss's rounding at a probe grows with its distance from the point where the curvature
        # is large (`spacing` above): each one-sided slope is off by up to the conditioning, each
        # gap by twice that, a jump estimate by as much times its weights. Not a kink (Rosenbrock
        # 1e-8 from its minimum read "6 of 10 at kinks", and a doubled gradient there "4 of 10 wrong").
        smeared = 2 * conditioning[:, None] * np.abs(_JUMPS[m]).sum(axis=1)[None, :]
        jump_noise = np.hypot(sigma[:, None] * jump_unit, smeared)
        significance = np.max(np.abs(jumps) / jump_noise, axis=1) / ROUGH
        significance = np.where(np.isnan(significance), 0.0, significance)  # 0 / 0: no noise, no jump
        rough = significance > 1
        if m == 3 and first_order:
            # A loss smooth to first order only (x|x| terms: a second derivative that jumps at the
            # point, like i1e at 0) has central differences whose error is linear in the step,
            # which neither bound sees: it shows as D_k halving its change from level to level
            # where a smooth loss quarters it (a kink inside the step does that too, but shows as
            # a jump, and finer steps leave it). Then the finest change bounds the error, of the
            # three-level estimate.
            linear = _linear_convergence(odd, per_step, width) & ~rough
            numeric = np.where(linear, odd @ c, numeric)
            analytic = np.where(linear, along @ c, analytic)
            roundoff = np.where(linear, per_step * np.sqrt((2 / width**2) @ c**2), roundoff)
            truncation = np.where(linear, np.abs(odd[:, 1] - odd[:, 2]), truncation)
        at_point = persistent = np.zeros(len(odd), dtype=bool)
        if levels > m:
            # A kink at the point itself shows the same jump in every window (a kink further out
            # moves relative to the step and changes its jump estimates; a smooth part shrinks).
            def jump_above(up: int) -> tuple[np.ndarray, np.ndarray]:
                cols = slice(2 * (levels - m - up), 2 * (levels - up))
                scale = 2.0**up * top
                jump_, unit_ = _jump_estimates(
                    values[:, cols] - f0, displacement[:, cols] / scale[:, None], scale, _JUMPS[m][:1]
                )
                return jump_[:, 0], np.hypot(sigma * unit_[:, 0], smeared[:, 0])

            def same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
                return np.abs(a[0] - b[0]) <= ROUGH * np.hypot(a[1], b[1]) + SAME_JUMP * np.abs(b[0])

            now, before = (jumps[:, 0], jump_noise[:, 0]), jump_above(1)
            # A jump seen at two successive steps that did not shrink like a smooth part would.
            persistent = (
                (np.abs(now[0]) > KINK * now[1])
                & (np.abs(before[0]) > KINK * before[1])
                & (np.abs(now[0]) >= SAME_JUMP * np.abs(before[0]))
            )
            if levels > m + 1:
                earlier = jump_above(2)
                at_point = persistent & (np.abs(earlier[0]) > KINK * earlier[1]) & same(now, before) & same(before, earlier)
        if m == 3:
            unit = np.sqrt((2 / width**2) @ _TRUNCATION[m] ** 2) / top
            samples = np.stack([odd @ _TRUNCATION[m] / unit, jumps[:, 0] / jump_unit[:, 0]], axis=1)
        else:
            samples = np.full((len(odd), 2), np.nan)
        # The largest estimate: at a kink within the step some of them under-state the jump.
        jump = np.take_along_axis(jumps, np.argmax(np.abs(jumps), axis=1)[:, None], axis=1)[:, 0]
        finite = np.isfinite(numeric) & ~np.isnan(truncation) & ~np.isnan(roundoff)
        error = ERROR_BAR_FACTOR * (truncation + roundoff + asymmetry + conditioning)  # inf where sigma / step overflows (subnormal steps)
        # Two levels never settle a Richardson estimate: a single jump estimate can miss several
        # small kinks inside the step (a first-layer weight moves every sample's pre-activation).
        settled = finite & ~rough & (truncation <= roundoff) & (m >= window_levels(method))
    return Estimates(
        numeric=numeric,
        analytic=analytic,
        error=error,
        truncation=truncation,
        roundoff=roundoff,
        right=numeric + jump / 2,
        left=numeric - jump / 2,
        jump=jump,
        rough=rough & finite,
        settled=settled,
        at_point=at_point & finite,
        kink=persistent & finite,
        step=top,
        significance=significance,
        noise_samples=samples,
        noise=sigma,
    )


#: Successive changes of the central differences shrinking by less than this ratio (a smooth
#: loss: 4, an error linear in the step: 2) mark first-order convergence.
LINEAR_RATIO = 3.0


def _linear_convergence(odd: np.ndarray, per_step: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Per probe, whether the three central differences `odd` (coarse to fine) converge linearly:
    both changes of one sign, clear of their noise, the finer at least a third of the coarser."""
    noise = per_step[:, None] * np.sqrt(2.0) / width  # of each D_k
    change = odd[:, :-1] - odd[:, 1:]
    change_noise = np.hypot(noise[:, :-1], noise[:, 1:])
    clear = np.all(np.abs(change) > KINK * change_noise, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = change[:, 0] / change[:, 1]
    return clear & (ratio > 0) & (ratio < LINEAR_RATIO)


def _slope_gaps(residual: np.ndarray, unit_moved: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Per level, how much the one-sided slopes differ: ``K = f'' (a + b) / 2`` on a smooth loss,
    for the rounded steps a, b either side."""
    return (residual[:, 0::2] / unit_moved[:, 0::2] - residual[:, 1::2] / unit_moved[:, 1::2]) / top[:, None]


def _jump_estimates(
    residual: np.ndarray, unit_moved: np.ndarray, top: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Jump estimates (one column per row of weights) and their noise per unit of sigma.

    The one-sided slopes of the residual differ by ``K_k = f'' t_k + ...`` on a smooth function;
    the rows combine the ``K_k`` of a window's levels so that the smooth part cancels.
    `unit_moved` holds the displacements in units of the window's step `top`.
    """
    d_plus, d_minus = unit_moved[:, 0::2], unit_moved[:, 1::2]
    # The smooth part is f'' (a + b) / 2 for the rounded steps a, b either side, whose sum is off
    # its nominal 2 ** (1 - k) by up to an ulp: each K_k is taken back to the nominal width, or a
    # large curvature leaves a residue the rows do not cancel, read as a jump (a kink).
    to_nominal = 2.0 ** (1 - np.arange(d_plus.shape[1])) / (d_plus - d_minus)
    gap = (residual[:, 0::2] / d_plus - residual[:, 1::2] / d_minus) * to_nominal / top[:, None]
    f0_weight = ((1 / d_minus - 1 / d_plus) * to_nominal) @ rows.T
    unit = np.sqrt(((1 / d_plus**2 + 1 / d_minus**2) * to_nominal**2) @ (rows**2).T + f0_weight**2) / top[:, None]
    return gap @ rows.T, unit


def rescale_noise(estimates: Estimates, sigma: float) -> Estimates:
    """The same estimates for a loss whose noise is at least `sigma` (more than first assumed)."""
    if estimates.significance is None or estimates.noise is None:
        return estimates
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # a subnormal noise: an infinite factor
        factor = np.where(estimates.noise > 0, np.maximum(estimates.noise, sigma) / estimates.noise, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        roundoff = estimates.roundoff * factor
        # Where the bar was infinite already it stays so (inf - inf would make it NaN).
        grown = np.where(roundoff == estimates.roundoff, 0.0, roundoff - estimates.roundoff)
        error = estimates.error + ERROR_BAR_FACTOR * grown
    significance = estimates.significance / factor
    rough = (significance > 1) & estimates.finite
    return replace(
        estimates,
        roundoff=roundoff,
        error=error,
        significance=significance,
        rough=rough,
        settled=estimates.finite & ~rough & (estimates.truncation <= roundoff),
        noise=np.maximum(estimates.noise, sigma),
    )


#: The complex step, relative to each parameter's scale: far below any rounding, so the real part
#: of ``f(x + i t w)`` is ``f(x)`` to the last bit and the imaginary part ``t f'(x) w`` is exact.
COMPLEX_STEP = 1e-20
#: Rounding of a complex-step derivative: this many ulps of its value (the evaluation's own
#: relative rounding through a typical loss).
COMPLEX_STEP_ULPS = 16


def complex_step(values: np.ndarray, step: np.ndarray, slope: np.ndarray) -> Estimates:
    """Complex-step derivatives ``Im f(x + i t w) / t``: no subtractive cancellation at all.

    The only error is the evaluation's own relative rounding, a few ulps of the result.

    Examples
    --------
    >>> x, t = 0.7, 1e-20
    >>> e = complex_step(np.array([np.sin(x + 1j * t)]), np.array([t]), np.array([np.cos(x)]))
    >>> bool(abs(e.numeric[0] - np.cos(x)) <= e.error[0])
    True
    """
    numeric = np.imag(values) / step
    roundoff = COMPLEX_STEP_ULPS * np.finfo(np.float64).eps * np.abs(numeric)
    zeros = np.zeros_like(numeric)
    return Estimates(
        numeric=numeric,
        analytic=np.asarray(slope, dtype=float),
        error=ERROR_BAR_FACTOR * roundoff,
        truncation=zeros,
        roundoff=roundoff,
        right=numeric,
        left=numeric,
        jump=zeros,
        rough=np.zeros(len(numeric), bool),
        settled=np.isfinite(numeric),
        step=np.asarray(step, dtype=float),
    )


#: Sums of squares inside this range lose nothing to under- or overflow of their terms that matters.
SQUARES_RANGE = (2.0**-900, 2.0**900)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` in one thread: BLAS would start its own thread pool for long vectors, which
    fights the loss's (torch's, say) for the same cores."""
    return float(np.einsum("i,i->", a, b))


def rms(values: np.ndarray) -> float:
    """Root mean square, without overflow or underflow of the squares.

    Examples
    --------
    >>> print(f"{rms(np.array([3e200, 4e200])):.4g}")
    3.536e+200
    """
    values = np.asarray(values, dtype=float).ravel()
    if not values.size:
        return 0.0
    squares = dot(values, values)
    if SQUARES_RANGE[0] < squares < SQUARES_RANGE[1]:
        return math.sqrt(squares / values.size)
    largest = max(abs(float(values.max())), abs(float(values.min())))  # no copy of millions
    if largest == 0 or not np.isfinite(largest):
        return largest
    scaled = values / largest
    return largest * float(np.sqrt(np.mean(np.square(scaled, out=scaled))))


def safe_norm(values: np.ndarray) -> float:
    """The Euclidean norm in one pass, or rescaled where the squares would under- or overflow.

    Examples
    --------
    >>> safe_norm(np.array([3.0, 4.0])), safe_norm(np.array([3e-320, 4e-320])) > 0, safe_norm(np.array([3e300, 4e300]))
    (5.0, True, 5e+300)
    """
    values = np.asarray(values, dtype=float).ravel()
    squares = dot(values, values)
    if SQUARES_RANGE[0] < squares < SQUARES_RANGE[1]:
        return math.sqrt(squares)
    return rms(values) * math.sqrt(len(values)) if len(values) else 0.0


def element_scales(params) -> np.ndarray:
    """Each parameter's natural size: its magnitude, but never below its tensor's RMS.

    A parameter at zero (a bias at initialisation) still gets a sensible step from its
    neighbours; a tensor that is all zeros falls back to the RMS of all parameters (at most 1).
    The result is read-only and remembered per `params` (a check asks for it several times, and
    each time costs a dozen passes over millions of parameters).
    """
    try:
        cached = _SCALES.get(params)
    except TypeError:  # not weakly referenceable
        cached = None
    if cached is not None:
        return cached
    values = params.values
    scales = np.empty_like(values)
    for leaf in params.leaves:
        part = values[leaf.slice]
        typical = rms(part) or min(rms(values) or 1.0, 1.0)
        mine = passes.absolute(part, out=scales[leaf.slice])
        passes.maximum(mine, typical, out=mine)
    scales.setflags(write=False)
    try:
        _SCALES[params] = scales
    except TypeError:
        pass
    return scales


_SCALES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: The largest level-0 step, as a fraction of the parameter's scale (float16: 0.35, see `choose_steps`).
MAX_RELATIVE_STEP = 0.1
# Step rule t/s = (C eta)**(1/p). Richardson over three levels: its own truncation bound grows like
# t**4 and would allow t/s = (7800 eta)**(1/5), but the kink test's two-level jump estimates keep a
# smooth part f'''' t**3 / 16 that must stay below their noise (~8 sigma / t) or every probe looks
# rough: with derivatives varying on the parameter's scale (f'''' ~ g / s**3) that is t/s below
# about (130 eta)**(1/4). Central differences bound their error by |D_0 - D_1| / 3 ~ t**2 against
# 1.4 sigma / t: C = 17, p = 3.
_STEP_RULE = {"richardson": (100.0, 4), "central": (17.0, 3)}


def choose_steps(params, sigma: float, gradient: np.ndarray, method: Method) -> np.ndarray:
    """Level-0 step per parameter, balancing truncation against round-off.

    ``eta = sigma / (s g)`` is the loss's noise relative to the change a step of the parameter's
    scale ``s`` makes along its tensor's typical gradient ``g``; the relative step grows with it
    as ``(C eta)**(1/p)`` (see `_STEP_RULE`), between ``eps**(1/p)`` of the parameter's dtype and
    `MAX_RELATIVE_STEP` (or ``2 eps**(1/4)`` if larger: float16), rounded to the grid ``2**(k + 1/2)``. The ladder then halves the step
    wherever that was too coarse.

    Examples
    --------
    >>> from gradprobe.params._params import Params
    >>> p = Params(np.array([1.0, 2.0]))
    >>> steps = choose_steps(p, 1e-16, np.array([1.0, 1.0]), "richardson")
    >>> bool(1e-4 < steps[0] / 2 < 1e-2)
    True
    """
    constant, power = _STEP_RULE.get(method, _STEP_RULE["richardson"])
    scales = element_scales(params)
    steps = np.empty_like(scales)
    for leaf in params.leaves:
        s = scales[leaf.slice]
        g_typical = rms(gradient[leaf.slice])
        lowest = float(np.finfo(leaf.dtype).eps) ** (1 / power)
        # Half precision is so noisy that only a wider step resolves anything.
        largest = max(MAX_RELATIVE_STEP, 2 * float(np.finfo(leaf.dtype).eps) ** 0.25)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            eta = sigma / (s * g_typical) if g_typical > 0 else np.full_like(s, np.inf)
            relative = np.clip((constant * np.nan_to_num(eta, nan=np.inf)) ** (1 / power), lowest, largest)
        # On a fixed geometric grid, so that a gradient that differs a little (a small bug) almost
        # always gets the very same steps, hence the very same numerical side. Not powers of two:
        # points on a binary grid round in a regular pattern that the noise model does not expect.
        steps[leaf.slice] = 2.0 ** (np.round(np.log2(relative * s) - 0.5) + 0.5)
    return steps
