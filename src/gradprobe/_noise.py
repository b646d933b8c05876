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

_POINTS = 9  # 8 differences: orders 1..8, as in ECnoise


@dataclass(frozen=True)
class NoiseEstimate:
    """Standard deviation of the loss's noise and how it was found."""

    sigma: float
    reliable: bool
    nfev: int


def _gamma(order: int) -> float:
    # Var(k-th difference of iid noise) = (2k)!/(k!)^2 * sigma^2
    return factorial(order) ** 2 / factorial(2 * order)


def noise_from_table(values: np.ndarray) -> tuple[float, str]:
    """Noise level from loss values at equally spaced points.

    Returns ``(sigma, verdict)`` with verdict "ok", "step too small" (values all equal) or
    "step too large" (the smooth part dominates the differences).

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
    if spread > 0.1 * max(abs(table.max()), abs(table.min())):
        return float("nan"), "step too large"
    levels, signs_change = [], []
    for order in range(1, len(table)):
        table = np.diff(table)
        if order == 1 and not np.any(table):
            return 0.0, "step too small"
        levels.append(np.sqrt(_gamma(order) * np.mean(table**2)))
        signs_change.append(table.min() < 0 < table.max())
    for k in range(len(levels) - 2):
        window = levels[k : k + 3]
        if min(window) > 0 and max(window) <= 4 * min(window) and signs_change[k]:
            return float(levels[k]), "ok"
    return float("nan"), "step too large"


def estimate_noise(evaluate_line, f0: float, step: float, floor: float) -> NoiseEstimate:
    """Noise of the loss along one direction, retrying with a different spacing when needed.

    `evaluate_line(offsets)` returns the loss at ``x + offsets * step * direction``. The result
    never falls below `floor` (half an ulp of the loss: rounding the result alone costs that).
    """
    half = _POINTS // 2
    offsets = np.array([k for k in range(-half, half + 1) if k != 0], dtype=float)
    nfev = 0
    for _ in range(3):
        values = evaluate_line(offsets * step)
        nfev += len(offsets)
        table = np.insert(values, half, f0)
        if not np.all(np.isfinite(table)):
            step /= 100.0
            continue
        sigma, verdict = noise_from_table(table)
        if verdict == "ok":
            return NoiseEstimate(max(sigma, floor), True, nfev)
        step = step * 100.0 if verdict == "step too small" else step / 100.0
    return NoiseEstimate(floor, False, nfev)
