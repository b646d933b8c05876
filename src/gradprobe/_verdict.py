"""The Judge: analytic against numerical values, within the numerical side's error bars.

An element *fails* only when ``|analytic - numeric|`` exceeds the error bar (already
`CONFIDENCE` times the estimated error) plus a floor for the analytic side's own rounding. It is
inconclusive, with a reason, when the numerical side cannot tell:

* ``"kink"``: the one-sided slopes disagree and the analytic value lies between them (a valid
  derivative at a non-differentiable point such as relu at 0);
* ``"noise"``: the error bar is over a tenth of the tensor's gradient, so a pass would mean little;
* ``"nonfinite"``: the loss was NaN or inf near the point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._differences import Estimates

ELEMENT_STATUSES = ("pass", "fail", "kink", "noise", "nonfinite")
PASS, FAIL, KINK, NOISE, NONFINITE = range(5)

#: An error bar larger than this fraction of the tensor's gradient leaves the element unresolved.
UNRESOLVED = 0.1


@dataclass(frozen=True)
class Judgement:
    """Per-element outcome codes (indices into `ELEMENT_STATUSES`) and the floor used."""

    codes: np.ndarray
    floor: np.ndarray


def analytic_floor(analytic: np.ndarray, scale: np.ndarray, eps: np.ndarray, rtol: float) -> np.ndarray:
    """Disagreement that rounding in the analytic gradient itself can explain (or `rtol` allows)."""
    size = np.maximum(np.abs(analytic), scale)
    return np.maximum(16 * eps, rtol) * size


def judge(estimates: Estimates, scale: np.ndarray, floor: np.ndarray) -> Judgement:
    """Classify each element; `scale` is its tensor's typical gradient size."""
    a, n, err = estimates.analytic, estimates.numeric, estimates.error
    with np.errstate(invalid="ignore"):
        agrees = np.abs(a - n) <= err + floor
        resolved = err <= UNRESOLVED * scale
        low = np.minimum(estimates.left, estimates.right) - err
        high = np.maximum(estimates.left, estimates.right) + err
        one_sided_differ = np.abs(estimates.right - estimates.left) > err + floor
        between = (a >= low) & (a <= high) & one_sided_differ
    codes = np.where(agrees, np.where(resolved, PASS, NOISE), np.where(between, KINK, FAIL))
    codes = np.where(estimates.finite, codes, NONFINITE)
    return Judgement(codes.astype(np.int8), floor)


def combine_levels(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Final codes for re-probed elements: the finer probe decides, unless it could not resolve."""
    undecided = (second == NOISE) | (second == NONFINITE)
    keep_first = undecided & ((first == FAIL) | (first == KINK))
    return np.where(keep_first, first, second)


def tensor_status(codes: np.ndarray) -> tuple[str, str | None]:
    """A tensor fails if any element fails; it is inconclusive if any element is unresolved or
    every element sits at a kink; otherwise it passes (kinks are listed, not counted against it)."""
    if np.any(codes == FAIL):
        return "fail", None
    for code in (NOISE, NONFINITE):
        if np.any(codes == code):
            return "inconclusive", ELEMENT_STATUSES[code]
    if np.all(codes == KINK):
        return "inconclusive", "kink"
    return "pass", None


def overall_status(statuses: list[str]) -> str:
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "inconclusive"
    return "pass"


def relative_difference(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """The seed's measure: ``||a - n|| / (||a|| + ||n||)`` (0 when both are zero)."""
    denominator = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / denominator) if denominator > 0 else 0.0


def resolution(error: np.ndarray, floor: np.ndarray, numeric: np.ndarray, fallback: float) -> float:
    """Smallest relative gradient error (in norm) that is guaranteed to be detected.

    An analytic error ``e`` goes unnoticed only if ``|e_i| <= 2 err_i + floor_i`` for every element
    (the numerical value itself may be off by ``err_i``), so errors with
    ``||e|| > ||2 err + floor||`` are always caught.
    """
    norm = float(np.linalg.norm(numeric)) or fallback
    return float(np.linalg.norm(2 * error + floor) / norm) if norm > 0 else float("inf")
