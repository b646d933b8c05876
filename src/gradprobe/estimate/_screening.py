"""Screening: one central difference per element, its truncation bounded per tensor.

A full step ladder costs six or more evaluations per element. Most elements of a tensor need far
fewer: a few *scouts* per tensor descend their whole ladder, and from them the tensor gets a bound
on a central difference's truncation error (the largest the scouts show, per step squared, times
`TRUNCATION_MARGIN`) and the coarsest ladder level at which that bound is a small share of the
round-off. Every other element is probed at that level alone (two evaluations) and kept when it
clearly agrees with its analytic value inside its bar; the rest (disagreeing, near their bar,
unresolved, curving or varying faster than the scouts, kinked, non-finite) descend their own ladders
as before. So an element is never reported wrong, or undecided, on a screening difference alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _differences as fd
from ._ladder import Ladder

#: Elements per tensor whose whole ladder is descended when the others are screened.
SCOUTS = 3
#: A tensor with fewer elements than this in one batch is probed on full ladders only.
SCREEN_MIN = 2 * SCOUTS
#: With fewer scouts than this giving a clean reference, the tensor is probed on full ladders only.
USABLE_SCOUTS = 2
#: An element the scouts did not see may have this many times their largest truncation (per step
#: squared): the spread of higher derivatives between elements of one tensor.
TRUNCATION_MARGIN = 2.0
#: Curvature (second difference) an element may show beyond this many times the scouts' largest
#: before the excess is taken for a kink inside its step, which moves a central difference by up to
#: half the gap between its one-sided slopes.
CURVATURE_MARGIN = 4.0
#: A screened element is kept when its disagreement is at most this fraction of its error bar's
#: numerical part (three standard deviations of a bar of four: the few correct elements beyond it
#: descend their ladders)...
ACCEPT = 0.75
#: ... and its error bar is at most this fraction of its tensor's typical numerical derivative (the
#: judge's `UNRESOLVED` is 0.1: a bar near that is left to the ladder, which resolves more finely).
RESOLVED = 0.05
#: The truncation bound at the level chosen is at most this fraction of the round-off...
SHARE = 0.25
#: ... and, grown for an element that curves more or varies faster than the scouts, at most this
#: multiple of it, or the element descends its ladder (its bar would be mostly the bound's).
GROWN = 4.0


def scout_positions(count: int) -> np.ndarray:
    """`SCOUTS` positions spread evenly over a batch of `count` elements of one tensor (the first,
    the last and between: different rows and columns of a matrix), independent of any gradient."""
    return np.unique(np.round(np.linspace(0, count - 1, SCOUTS)).astype(int))


@dataclass(frozen=True)
class Level:
    """The level one tensor's elements are screened at, from its scouts."""

    level: int
    #: Truncation bound of a central difference, per squared half-width of its points.
    per_step2: float
    #: The largest second derivative the smooth scouts showed, beyond its noise (0: none).
    curvature: float
    #: The largest derivative the scouts showed.
    size: float


def _central(values: np.ndarray, displacement: np.ndarray, f0: float) -> tuple[np.ndarray, ...]:
    """Central difference, half-width and one-sided slope gap of pairs ``(+h, -h)``."""
    plus, minus = values[:, 0], values[:, 1]
    d_plus, d_minus = displacement[:, 0], displacement[:, 1]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        central = (plus - minus) / (d_plus - d_minus)
        gap = (plus - f0) / d_plus - (minus - f0) / d_minus
    return central, (d_plus - d_minus) / 2, gap


def _gap_noise(noise: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Standard deviation of the one-sided slope gap of pairs ``(+h, -h)`` (`_central`)."""
    d_plus, d_minus = displacement[:, 0], displacement[:, 1]
    with np.errstate(divide="ignore", over="ignore"):
        return noise * np.sqrt(1 / d_plus**2 + 1 / d_minus**2 + (1 / d_minus - 1 / d_plus) ** 2)


def _excess_curvature(gap: np.ndarray, gap_noise: np.ndarray, half: np.ndarray) -> np.ndarray:
    """The second derivative a slope gap shows beyond `fd.KINK` times its noise."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.maximum(np.abs(gap) - fd.KINK * gap_noise, 0.0) / np.abs(half)


def choose_level(ladder: Ladder, scouts: np.ndarray, reference: fd.Estimates, sigma: float) -> Level | None:
    """The level at which the tensor of the `scouts` (positions in `ladder`) is screened, or None
    when too few scouts give a clean reference (`reference`: their ladders' final estimates), one
    of them disagrees with its analytic value (a tensor wrong throughout: its elements would all
    descend their ladders after the screening), or no level is fine enough.

    A central difference's truncation error shrinks like ``h**2``. Each scout's, per ``h**2``, is
    at least what any level it descended shows beyond the noise (of the difference and of the
    reference), and at most what the level that bounds it most tightly allows with that noise; the
    larger of the two, over the scouts, times `TRUNCATION_MARGIN`, bounds the tensor's. The level is
    the coarsest at which that bound is at most `SHARE` of every scout's round-off: the bar is then
    the round-off's, known element by element, and an element whose truncation is several times
    the bound still lies inside it. It may be finer than any level the scouts evaluated: the bound
    only shrinks there. In a tensor where scouts met kinks, only the levels below those at which
    their kinks had left the step count."""
    clean = reference.finite & ~reference.is_rough & ~(reference.at_point if reference.at_point is not None else False)
    clean &= reference.settled if reference.settled is not None else True
    clean &= np.isfinite(reference.error)
    usable = scouts[clean]
    with np.errstate(invalid="ignore"):
        wrong = np.abs(reference.numeric - reference.analytic) > reference.error
    if len(usable) < USABLE_SCOUTS or np.any(wrong[clean]):
        return None
    kinked = ladder.kinked[usable]
    lowest = int(np.max(ladder.cleared[usable][kinked], initial=0))
    evaluated = int(np.min(ladder.levels[usable]))
    finest = int(np.min(ladder.deepest[usable])) - 1
    if lowest >= evaluated:
        return None
    exact, spread = reference.numeric[clean], reference.error[clean] / fd.ERROR_BAR_FACTOR
    shown, allowed, curvature = np.zeros(len(usable)), np.full(len(usable), np.inf), np.zeros(len(usable))
    for level in range(lowest, evaluated):
        columns = slice(2 * level, 2 * level + 2)
        displacement = ladder.displacement[usable, columns]
        central, half, gap = _central(ladder.values[usable, columns], displacement, ladder.f0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            noise = fd.KINK * np.hypot(sigma / (np.sqrt(2) * np.abs(half)), spread)
            off = np.abs(central - exact)
            shown = np.fmax(shown, np.maximum(off - noise, 0.0) / half**2)
            allowed = np.fmin(allowed, (off + noise) / half**2)
        curvature = np.fmax(curvature, _excess_curvature(gap, _gap_noise(np.full(len(half), sigma), displacement), half))
    per_step2 = TRUNCATION_MARGIN * float(np.max(np.maximum(shown, allowed)))
    if not np.isfinite(per_step2):
        return None
    top = np.abs(ladder.steps[usable])
    for level in range(lowest, finest + 1):
        half = top * 2.0**-level
        if np.all(per_step2 * half**2 <= SHARE * sigma / (np.sqrt(2) * half)):
            return Level(level, per_step2, float(np.max(curvature[~kinked], initial=0.0)), float(np.max(np.abs(exact))))
    return None


def screened(
    level: Level, values: np.ndarray, displacement: np.ndarray, f0: float, analytic: np.ndarray,
    spread: np.ndarray, floor: np.ndarray, sigma: float, rounding: float,
) -> tuple[fd.Estimates, np.ndarray]:
    """Estimates of elements probed once at `level` (`values`, `displacement`: ``(n, 2)``, points
    ``+h, -h``), and which of them are kept (the rest descend their ladders).

    `analytic` and `spread` are the elements' analytic values and uncertainty, `floor` the
    disagreement the judge excuses as the analytic side's rounding. Only the numerical part of the
    bar is held to `ACCEPT`: the analytic side's allowances are what the judge grants any estimate.
    "Resolved" is on the tensor's numerical scale (the screened differences' and the scouts'), never
    the gradient under test's: a wrong gradient must not make a tensor whose derivative is zero
    within its bars (judged then on the whole gradient's scale) look resolved."""
    central, half, gap = _central(values, displacement, f0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        noise = np.maximum(sigma, rounding * np.max(np.abs(values), axis=1, initial=abs(f0)))
        roundoff = noise * np.sqrt(2) / np.abs(2 * half)
        # An element that curves more than every scout, or whose derivative is larger than theirs
        # and than its tensor's typical one, may have larger higher derivatives too: a derivative
        # a times larger (a loss varying a times faster along it) has a third derivative a**3
        # times larger. Beyond `GROWN` times the round-off, it descends its ladder instead.
        curvature = _excess_curvature(gap, _gap_noise(noise, displacement), half)
        typical = fd.rms(central[np.isfinite(central)]) if np.any(np.isfinite(central)) else 0.0
        size = max(level.size, typical)
        faster = np.where(np.abs(central) > size, np.abs(central) / size, 1.0) ** 3
        growth = np.maximum(np.where(curvature > level.curvature, curvature / level.curvature, 1.0), faster)
        truncation = level.per_step2 * half**2 * growth
        numerical = fd.ERROR_BAR_FACTOR * (truncation + roundoff)
        error = numerical + fd.ERROR_BAR_FACTOR * spread
        # Curvature beyond `CURVATURE_MARGIN` times the scouts' may instead be a kink inside the
        # step, which moves a central difference by up to half the gap between its slopes.
        kink = np.maximum(curvature - CURVATURE_MARGIN * level.curvature, 0.0) * np.abs(half)
        disagreement = np.abs(central - analytic) + kink / 2
        allowed = ACCEPT * numerical + fd.ERROR_BAR_FACTOR * spread + floor
        keep = (disagreement <= allowed) & (error <= RESOLVED * size) & (truncation <= GROWN * roundoff)
    keep &= np.isfinite(central) & np.isfinite(error) & np.all(displacement != 0, axis=1)
    n, zeros, no = len(central), np.zeros(len(central)), np.zeros(len(central), bool)
    estimates = fd.Estimates(
        numeric=central, analytic=np.asarray(analytic, dtype=float), error=error, truncation=truncation,
        roundoff=roundoff, right=central, left=central, jump=zeros, rough=no, settled=keep.copy(),
        step=np.abs(half), at_point=no, kink=no, significance=zeros, noise_samples=np.full((n, 2), np.nan),
        noise=noise, kinked=no,
    )  # fmt: skip
    return estimates, keep
