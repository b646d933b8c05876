"""The Judge: analytic against numerical values, within the numerical side's error bars.

An element *fails* only when ``|analytic - numeric|`` exceeds its error bar (already
`ERROR_BAR_FACTOR` times the estimated error) plus a floor for the analytic side's own rounding. It is
inconclusive, with a reason, when the numerical side cannot tell:

* ``"kink"``: the one-sided derivatives differ by the same jump at successively finer steps (a
  non-differentiable point such as relu at 0, abs at 0, a max with a tie). There is no
  derivative to compare, and the one-sided slopes do not bound what a correct backward returns
  (for a sum of tied terms along one coordinate, each term routed to one side can land outside
  them), so the element is undecided whatever its value, and its whole disagreement counts
  against the resolution; also an element whose probe saw a kink inside its step and that agrees
  only within the wider error bar (or between the one-sided derivatives) that the kink left at the
  finest step;
* ``"noise"``: the error bar is over `UNRESOLVED` of the tensor's typical gradient, so a pass
  would mean little, or the loss was too ragged at every step tried to have a derivative;
* ``"nonfinite"``: the loss was NaN or inf at every step tried near the point.

A tensor is judged on its elements: it fails if any element fails; it is inconclusive if any
element is non-finite, if every element sits at a kink, or if its `resolution` is worse than
`UNRESOLVED`; otherwise it passes, and its elements at kinks are listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..estimate._differences import SAME_JUMP, Estimates
from ..estimate._differences import safe_norm as safe_norm  # the report builder's norm too

ELEMENT_STATUSES = ("pass", "fail", "kink", "noise", "nonfinite")
PASS, FAIL, KINK, NOISE, NONFINITE = range(5)

#: An error bar larger than this fraction of the tensor's gradient leaves the element unresolved;
#: a tensor whose resolution is worse than this is inconclusive.
UNRESOLVED = 0.1
#: Rounding of the analytic gradient itself: this many ulps of its value (or of its tensor's
#: typical size) can never count as a disagreement.
ANALYTIC_ULPS = 16
#: A probe still rough at its finest step fails where its jump is at most `ROUGH_SMOOTH` of its
#: estimate (smooth to six digits: what is rough is the higher derivatives at that step, not a kink
#: or aliasing) and the analytic value is off the estimate by `ROUGH_FAIL` times the jump and the
#: error bar together; else it is undecided.
ROUGH_FAIL, ROUGH_SMOOTH = 10.0, 1e-6
#: The same for a flat tensor (the loss does not depend on it: a bias before a normalisation, the
#: key bias of an attention layer), on the whole gradient's scale: its gradient is the residue of
#: terms that cancel over the batch (and the sequence), whose rounding grows with their number,
#: about as its square root in ulps: a million terms. A causal attention layer's key bias, trained
#: near a minimum, left 160 ulps of the whole gradient's RMS, and was FAILed at 16.
FLAT_ULPS = 1024


@dataclass(frozen=True)
class Judgement:
    """Per-element outcome codes (indices into `ELEMENT_STATUSES`) and the floor used."""

    codes: np.ndarray
    floor: np.ndarray


def analytic_floor(
    analytic: np.ndarray, scale: np.ndarray, eps: np.ndarray, rtol: float, ulps: np.ndarray | float = ANALYTIC_ULPS
) -> np.ndarray:
    """Disagreement that rounding in the analytic gradient itself can explain (or `rtol` allows)."""
    size = np.maximum(np.abs(analytic), scale)
    return np.maximum(ulps * eps, rtol) * size


def judge(estimates: Estimates, scale: np.ndarray, floor: np.ndarray) -> Judgement:
    """Classify each element; `scale` is its tensor's typical gradient size.

    Examples
    --------
    >>> from gradprobe.estimate._differences import Estimates
    >>> one = np.ones(3)
    >>> e = Estimates(numeric=np.array([1.0, 2.0, 0.5]), analytic=one, error=0.01 * one,
    ...               truncation=0 * one, roundoff=one, right=np.array([1.0, 2.0, 1.0]),
    ...               left=np.array([1.0, 2.0, 0.0]), jump=np.array([0.0, 0.0, 1.0]),
    ...               rough=np.array([False, False, True]))
    >>> [ELEMENT_STATUSES[c] for c in judge(e, one, 0 * one).codes]
    ['pass', 'fail', 'kink']
    """
    a, n, err = estimates.analytic, estimates.numeric, estimates.error
    jump = np.zeros_like(n) if estimates.jump is None else np.abs(estimates.jump)
    with np.errstate(invalid="ignore"):
        gap = np.abs(a - n)
        agrees = gap <= err + floor
        resolved = err <= UNRESOLVED * scale
        # At a kink the central estimate is the mean of the one-sided derivatives; any value
        # between them is a valid (sub)derivative. A kink just off the point makes the jump
        # estimates understate the jump by up to SAME_JUMP.
        between = gap <= (0.5 + SAME_JUMP) * jump + err + floor
    # A probe that saw a kink inside its step on the way down: its error bar, if still too wide,
    # is the kink's doing (the step had to shrink below it), not the loss's noise.
    kinked = np.zeros(len(n), bool) if estimates.kinked is None else estimates.kinked
    smooth = np.where(agrees, np.where(resolved, PASS, np.where(kinked, KINK, NOISE)), FAIL)
    # Still rough at the finest step: a kink at the point if its jump held steady over the last
    # windows; a kink somewhere inside the finest step if one was seen on the way down; else a
    # loss too ragged to differentiate at any step tried (noise, dense kinks).
    at_point = estimates.is_rough if estimates.at_point is None else estimates.at_point
    # Off its estimate by `ROUGH_FAIL` times the jump and the bar together, where the jump is a
    # millionth of the slope, a value is no derivative any kink or noise the probe saw allows: a
    # logistic regression's gradient returned as zeros, whose probes stayed rough from higher
    # derivatives alone (a jump of 2e-9 of the slope), read "too noisy" at every element.
    with np.errstate(invalid="ignore"):
        clearly_off = (gap > ROUGH_FAIL * (jump + err + floor)) & (jump <= ROUGH_SMOOTH * np.abs(n))
    inside = np.where(kinked & between, KINK, np.where(clearly_off, FAIL, NOISE))
    # At a kink at the point any routing of the derivative can be what the backward computes: for a
    # sum of tied terms (a max-pool tied over a batch) a valid value can lie outside the one-sided
    # slopes along one coordinate. So a kink never fails an element: it stays undecided here.
    codes = np.where(estimates.is_rough, np.where(at_point, KINK, inside), smooth)
    codes = np.where(estimates.finite, codes, NONFINITE)
    return Judgement(codes.astype(np.int8), floor)


def undetectable(estimates: Estimates, codes: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Per element, the largest analytic error that could have gone unnoticed.

    The numerical value may itself be off by its error bar, and the analytic one by its rounding
    floor, so an error up to ``2 (err + floor)`` can hide; at a kink, anything between the
    one-sided derivatives too; at a non-finite point, anything. A window still rough at the
    finest step (a kink somewhere inside it, or a loss whose derivatives vary much faster than
    the step assumed) is not judged at all: the estimate may be off by a share of the jump, and
    the analytic value's whole disagreement with it may be an error.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        bound = 2 * (estimates.error + floor)
        if estimates.jump is not None:
            jump = np.abs(estimates.jump)
            gap = np.abs(estimates.analytic - estimates.numeric)
            # At a kink the true value is unknown: anything between the one-sided derivatives, and
            # for a value outside them its whole disagreement.
            between = gap <= (0.5 + SAME_JUMP) * jump + estimates.error + floor
            bound = np.where(codes == KINK, bound + np.where(between, jump / 2, np.maximum(jump / 2, gap)), bound)
            unjudged = (codes == NOISE) & estimates.is_rough
            bound = np.where(unjudged, bound + (0.5 + SAME_JUMP) * jump + gap, bound)
    return np.where(codes == NONFINITE, np.inf, bound)


def resolution(bound: np.ndarray, numeric: np.ndarray, fallback: float) -> float:
    """Smallest relative gradient error (in norm) that is guaranteed to be detected.

    An analytic error ``e`` goes unnoticed only if ``|e_i| <= bound_i`` for every element (see
    `undetectable`), so errors with ``||e|| > ||bound||`` are always caught; relative to the
    gradient's norm (the numerical one, or `fallback` when that is zero or not finite).

    Examples
    --------
    >>> float(resolution(np.array([3e-9, 4e-9]), np.array([1.0, 0.0]), 1.0))
    5e-09
    """
    if not np.all(np.isfinite(bound)):
        return float("inf")
    norm = safe_norm(numeric) if np.all(np.isfinite(numeric)) else 0.0
    norm = norm or fallback
    with np.errstate(over="ignore"):
        return float(safe_norm(bound) / norm) if norm > 0 else float("inf")


def tensor_status(
    codes: np.ndarray, tensor_resolution: float = 0.0, *, zero: bool = False, kink_free: float | None = None
) -> tuple[str, str | None]:
    """A tensor's status and, when inconclusive, the reason.

    It fails if any element fails; it is inconclusive if any element's loss was not finite near
    the point ("nonfinite"), if every element sits at a kink ("kink"), or if the check could miss
    an error of more than `UNRESOLVED` of the tensor's gradient ("noise"; "kink" when the
    resolution without the kinks' jumps, `kink_free`, would have been fine: the elements at
    kinks are what leaves it unresolved); otherwise it passes. For a gradient that is `zero` on
    both sides a relative resolution means nothing: it is "noise" only if some element's error
    bar is (see `judge`).

    Examples
    --------
    >>> tensor_status(np.array([PASS, KINK]))
    ('pass', None)
    >>> tensor_status(np.array([PASS, FAIL, NONFINITE]))
    ('fail', None)
    >>> tensor_status(np.array([PASS, NOISE]), tensor_resolution=0.5)
    ('inconclusive', 'noise')
    >>> tensor_status(np.array([PASS, KINK]), tensor_resolution=0.5, kink_free=1e-9)
    ('inconclusive', 'kink')
    """
    if np.any(codes == FAIL):
        return "fail", None
    if np.any(codes == NONFINITE):
        return "inconclusive", "nonfinite"
    if np.all(codes == KINK):
        return "inconclusive", "kink"
    if np.any(codes == NOISE) if zero else not tensor_resolution <= UNRESOLVED:
        limited_by_kinks = kink_free is not None and kink_free <= UNRESOLVED and np.any(codes == KINK)
        return "inconclusive", "kink" if limited_by_kinks and not zero else "noise"
    return "pass", None


def overall_status(statuses: list[str]) -> str:
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "inconclusive"
    return "pass"


def relative_difference(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """The seed's measure: ``||a - n|| / (||a|| + ||n||)`` (0 when both are zero)."""
    with np.errstate(over="ignore", invalid="ignore"):
        denominator = safe_norm(analytic) + safe_norm(numeric)
        return float(safe_norm(analytic - numeric) / denominator) if denominator > 0 else 0.0
