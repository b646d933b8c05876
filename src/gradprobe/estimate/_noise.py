"""How noisy is the loss? A difference-table estimate in the spirit of Moré and Wild's ECnoise.

Rounding makes a loss computed in floating point a smooth function plus noise. Evaluating it at
equally spaced points along a random direction and taking differences of increasing order
removes the smooth part and leaves the noise; where successive orders agree and the differences
change sign, their size gives the noise's standard deviation. The noise level sets both the
finite-difference step and the round-off part of every error bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np

#: Points per table: 8 differences, orders 1..8, as in ECnoise. A table of 7 (orders 1..6) finds
#: the noise nearly as often (999 times in 1000 against 1000 for a line with a slope and noise) for
#: two evaluations less: what a large model's directional verdict uses.
POINTS, FEW_POINTS = 9, 7


@dataclass(frozen=True)
class NoiseEstimate:
    """Standard deviation of the loss's noise and how it was found."""

    sigma: float
    reliable: bool
    nfev: int
    ragged: bool = False  # no table found the noise, and most jumped about like noise at every try


def _gamma(order: int) -> float:
    # Var(k-th difference of iid noise) = (2k)!/(k!)^2 * sigma^2
    return factorial(order) ** 2 / factorial(2 * order)


def noise_from_table(values: np.ndarray) -> tuple[float, str]:
    """Noise level from loss values at equally spaced points.

    Returns ``(sigma, verdict)`` with verdict "ok", "step too small" (values all equal) or
    "step too large" (the smooth part dominates the differences, or the values jump about at
    every order). With "step too large", `sigma` is what the highest-order difference shows: the
    noise plus whatever smooth part is left, a fallback for a loss that is noise at every scale.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> values = 1.0 + 0.01 * np.linspace(-1, 1, 9) + 1e-9 * rng.standard_normal(9)
    >>> sigma, verdict = noise_from_table(values)
    >>> verdict, bool(3e-10 < sigma < 3e-9)
    ('ok', True)
    """
    table = np.asarray(values, dtype=np.float64)
    spread = table.max() - table.min()
    too_wide = spread > 0.1 * max(abs(table.max()), abs(table.min()))
    levels, signs_change = [], []
    for order in range(1, len(table)):
        table = np.diff(table)
        if order == 1 and not np.any(table):
            return 0.0, "step too small"
        size = float(np.max(np.abs(table)))  # scaled, so that a loss near 1e300 does not overflow
        levels.append(size * np.sqrt(_gamma(order) * np.mean((table / size) ** 2)) if size > 0 else 0.0)
        signs_change.append(table.min() < 0 < table.max())
    for k in range(len(levels) - 2):
        window = levels[k : k + 3]
        if not too_wide and min(window) > 0 and max(window) <= 4 * min(window) and signs_change[k]:
            return float(levels[k]), "ok"
    return float(levels[-1]), "step too large"


#: The last table's spacing is the first one's divided by this.
SPACING_RATIO = 4.0
#: A loss whose tables vary by more than this fraction of its value at every try, and whose
#: variation does not shrink by more than this factor while the spacing shrinks 10**4-fold, is
#: *ragged*: noise at every scale the parameters can express.
RAGGED = 0.1


def _one_table(evaluate_line, f0: float, step: float, points: int = POINTS) -> tuple[float, bool, int, bool]:
    """ECnoise at spacing `step`, retrying at 100x smaller or larger spacings (three tries).

    Returns ``(sigma, reliable, nfev, ragged)``; when no try is reliable, `sigma` is the smallest
    fallback of the tries that found the table too wide (NaN if none did), and `ragged` says
    whether every try found the loss varying by a good part of its own value (more than `RAGGED`)
    with a variation that did not shrink with the spacing: a smooth part varies 10**4 times less
    at the last try than at the first, a kink too; a loss such as sin(1e30), whose neighbouring
    floats are many periods apart, varies as much at every spacing (on a regular grid its values
    can look smooth, an aliased wave, so the shape of one table proves nothing).
    """
    half = points // 2
    offsets = np.array([k for k in range(-half, half + 1) if k != 0], dtype=float)
    nfev = 0
    fallback = float("nan")
    spreads = []
    for _ in range(3):
        values = evaluate_line(offsets * step)
        nfev += len(offsets)
        table = np.insert(values, half, f0)
        if not np.all(np.isfinite(table)):
            step /= 100.0
            spreads.append(np.nan)
            continue
        sigma, verdict = noise_from_table(table)
        if verdict == "ok":
            return sigma, True, nfev, False
        spread = float(table.max() - table.min())
        wide = spread > RAGGED * float(np.max(np.abs(table)))
        spreads.append(spread if verdict == "step too large" and wide else np.nan)
        if verdict == "step too large":
            fallback = float(np.nanmin([fallback, sigma]))
        step = step * 100.0 if verdict == "step too small" else step / 100.0
    ragged = bool(np.all(np.isfinite(spreads)) and min(spreads) > RAGGED * max(spreads))
    return fallback, False, nfev, ragged


def estimate_noise(lines, f0: float, step: float, floor: float, points: int = POINTS) -> NoiseEstimate:
    """Noise of the loss from difference tables along several directions and spacings.

    ``lines[k](offsets)`` returns the loss at ``x + offsets * direction_k``; table ``k`` is spaced
    ``step / SPACING_RATIO**(k / (len(lines) - 1))`` and has `points` points (odd, `f0` in the
    middle). Rounding noise does not depend on the direction or the spacing, but one table can
    misjudge it: a kink or strong curvature crossed by a wide table inflates its estimate, and
    rounding errors that happen to repeat along one grid (a loss of one or two parameters, say)
    hide from its differences. Too small a noise
    level would make every error bar too tight, so the largest estimate is kept. The result never
    falls below `floor` (half an ulp of the loss: rounding the result alone costs that).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> line = lambda offsets: np.cos(offsets) + 1e-10 * rng.standard_normal(len(offsets))
    >>> estimate = estimate_noise([line, line], 1.0, 1e-4, floor=1e-16)
    >>> estimate.reliable, bool(3e-11 < estimate.sigma < 3e-10), estimate.nfev
    (True, True, 16)
    """
    found, fallbacks, nfev, ragged = [], [], 0, 0
    for k, line in enumerate(lines):
        spacing = step / SPACING_RATIO ** (k / max(len(lines) - 1, 1))
        sigma, reliable, used, table_ragged = _one_table(line, f0, spacing, points)
        nfev += used
        ragged += table_ragged
        (found if reliable else fallbacks).append(sigma)
    if not found:
        # A loss that looks wild at every spacing tried, down to a few ulps (sin of 1e30), is noise
        # at every scale the parameters can express. A majority of the tables must say so: one
        # table of pure noise passes for a smooth one now and then (see `looks_like_noise`).
        rough = [s for s in fallbacks if np.isfinite(s)]
        return NoiseEstimate(max([floor, *rough]), False, nfev, 2 * ragged > len(lines) and bool(rough))
    return NoiseEstimate(max(max(found), floor), True, nfev)


def noise_from_samples(samples: np.ndarray) -> float:
    """The noise's standard deviation from samples that should each be ``N(0, sigma**2)``.

    The median of their absolute values, over its expected value for a normal distribution
    (0.6745): robust to the few samples that still carry some smooth part or a kink. NaN when
    there are none.

    Examples
    --------
    >>> samples = 2.0 * np.random.default_rng(0).standard_normal(4000)
    >>> bool(1.9 < noise_from_samples(samples) < 2.1)
    True
    """
    values = np.abs(np.asarray(samples, dtype=float).ravel())
    values = values[np.isfinite(values)]
    return float(np.median(values) / 0.6745) if values.size else float("nan")
