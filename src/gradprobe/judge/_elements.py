"""Judging probed elements against their tensors: the scale each element is resolved on, the
analytic side's rounding floor, and the per-element codes of `judge`.

`ElementResults` is what every strategy accumulates (flat positions, estimates, codes, floors);
`ElementJudge` turns estimates into codes for one check. Both are pure over their inputs: the
judge holds no state beyond what the check gave it.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from functools import cached_property

import numpy as np

from ..estimate import _differences as fd
from ..params._params import Leaf, Params
from ._verdict import ANALYTIC_ULPS, FLAT_ULPS, NOISE, NONFINITE, analytic_floor, judge, undetectable

_REQUIRED = tuple(f.name for f in fields(fd.Estimates) if f.default is MISSING)


def analytic_stand_in(analytic: np.ndarray) -> fd.Estimates:
    """Estimates whose numerical side is the analytic gradient: the scale to judge against before
    the whole numerical gradient is known."""
    return fd.Estimates(**{name: analytic for name in _REQUIRED})


@dataclass(frozen=True)
class ElementResults:
    """Per-element outcomes for the flat positions `indices` (all arrays aligned with it)."""

    indices: np.ndarray
    estimates: fd.Estimates
    codes: np.ndarray
    floor: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @staticmethod
    def empty() -> ElementResults:
        nothing = np.array([], dtype=float)
        estimates = fd.Estimates(**{name: nothing for name in _REQUIRED})
        return ElementResults(np.array([], dtype=np.int64), estimates, np.array([], dtype=np.int8), nothing)

    def take(self, positions: np.ndarray) -> ElementResults:
        return ElementResults(self.indices[positions], self.estimates.take(positions), self.codes[positions], self.floor[positions])

    def within(self, leaf: Leaf) -> ElementResults:
        """The results of `leaf`'s elements."""
        return self.take(np.flatnonzero((self.indices >= leaf.offset) & (self.indices < leaf.offset + leaf.size)))

    @staticmethod
    def concatenate(parts: list[ElementResults]) -> ElementResults:
        parts = [p for p in parts if len(p)]
        if not parts:
            return ElementResults.empty()
        return ElementResults(
            np.concatenate([p.indices for p in parts]),
            fd.stack([p.estimates for p in parts]),
            np.concatenate([p.codes for p in parts]),
            np.concatenate([p.floor for p in parts]),
        )


def overall_scale(estimates: fd.Estimates) -> float:
    """The RMS of the whole numerical gradient (its finite elements)."""
    numeric = estimates.numeric[np.isfinite(estimates.numeric)]
    return fd.rms(numeric) if numeric.size else 0.0


class ElementJudge:
    """Codes and analytic floors for probed elements of one check.

    Parameters
    ----------
    params : the parameters as the loss is evaluated (offsets and tensors).
    user_params : the parameters as the user gave them: their dtypes set the analytic side's rounding.
    analytic : the flat gradient under test.
    rtol : the user's extra tolerance.
    ragged : the tensors along which the loss has no derivative at this precision: nothing the
        differences say about their elements is trusted.
    """

    def __init__(
        self, params: Params, user_params: Params, analytic: np.ndarray, rtol: float, ragged: tuple[str, ...] = ()
    ) -> None:
        self.params, self.user_params, self.analytic, self.rtol = params, user_params, analytic, rtol
        self.ragged_tensors = ragged
        self.ragged = np.zeros(params.size, bool)
        for leaf in params.leaves:
            if leaf.name in ragged:
                self.ragged[leaf.slice] = True

    @cached_property
    def eps(self) -> np.ndarray:
        """Per element, the rounding of the analytic gradient: the parameters' own precision
        (made on first use: the directional strategy of a large model never needs it)."""
        eps = np.empty(self.user_params.size)
        for leaf in self.user_params.leaves:
            eps[leaf.slice] = np.finfo(leaf.dtype).eps
        return eps

    def tensor_scales(self, estimates: fd.Estimates | None) -> np.ndarray:
        """Typical gradient size per element's tensor (the unit for 'resolved'); from the analytic
        gradient alone while the numerical one is not known yet."""
        numeric_all = self.analytic if estimates is None else estimates.numeric
        overall = fd.rms(numeric_all) if np.all(np.isfinite(numeric_all)) else 0.0
        scale = np.empty(self.params.size)
        for leaf in self.params.leaves:
            numeric = numeric_all[leaf.slice]
            numeric = numeric[np.isfinite(numeric)]
            candidates = [fd.rms(self.analytic[leaf.slice])]
            if numeric.size:
                candidates.append(fd.rms(numeric))
            scale[leaf.slice] = max(candidates) or overall or 1.0
        return scale

    def flat_leaves(self, estimates: fd.Estimates) -> list[Leaf]:
        """The tensors whose numerical gradient is zero within its error bars, while the gradient
        as a whole is not. The numerical side alone decides (a gradient that is merely small
        next to the others', measured clear of zero, keeps its own scale)."""
        overall = overall_scale(estimates)
        flat: list[Leaf] = []
        if not overall > 0:
            return flat
        with np.errstate(invalid="ignore", over="ignore"):
            zero = np.abs(estimates.numeric) <= estimates.error
        for leaf in self.params.leaves:
            seen = np.isfinite(estimates.numeric[leaf.slice])
            if np.any(seen) and np.all(zero[leaf.slice][seen]) and fd.rms(estimates.numeric[leaf.slice][seen]) < overall:
                flat.append(leaf)
        return flat

    def codes(
        self, estimates: fd.Estimates, indices: np.ndarray | None = None, scale_from: fd.Estimates | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Codes and analytic floors for the probes of `indices` (all coordinates by default).

        The unit for "resolved" is each tensor's RMS gradient; the analytic side's own rounding is
        measured against its median size, so that one huge element does not excuse the others.
        """
        if indices is None:
            indices = np.arange(self.params.size)
        whole = len(estimates.numeric) == self.params.size
        if scale_from is None and whole:
            scale_from = estimates
        scale = self.tensor_scales(scale_from)
        typical = np.empty(self.params.size)
        for leaf in self.params.leaves:
            analytic = self.analytic[leaf.slice]
            sizes = []
            if scale_from is not None:
                # Elements whose numerical side failed (NaN near the point) do not set the scale.
                numeric = scale_from.numeric[leaf.slice]
                seen = np.isfinite(numeric)
                analytic = analytic[seen] if np.any(seen) else analytic
                sizes = [float(np.median(np.abs(numeric[seen])))] if np.any(seen) else []
            typical[leaf.slice] = max([float(np.median(np.abs(analytic))), *sizes])
        ulps = np.full(self.params.size, float(ANALYTIC_ULPS))
        if whole:
            # A tensor the loss does not depend on (a bias before batch norm) has nothing of its own
            # to measure against: its zeros are resolved, and its analytic rounding excused, on the
            # scale of the whole gradient (known only once every element has been probed).
            overall = overall_scale(estimates)
            for leaf in self.flat_leaves(estimates):
                scale[leaf.slice] = np.maximum(scale[leaf.slice], overall)
                typical[leaf.slice] = max(typical[leaf.offset], overall)
                ulps[leaf.slice] = FLAT_ULPS
        floor = analytic_floor(self.analytic[indices], typical[indices], self.eps[indices], self.rtol, ulps[indices])
        judgement = judge(estimates, scale[indices], floor)
        # Where the loss has no derivative, nothing the finite differences say can be trusted.
        unresolved = self.ragged[indices] & (judgement.codes != NONFINITE)
        return np.where(unresolved, NOISE, judgement.codes).astype(np.int8), floor

    def as_flat(self, results: ElementResults, overall: float) -> ElementResults:
        """`results` of one tensor whose numerical gradient is zero within its error bars, judged
        as `codes` judges such a tensor when every element was probed: resolved, and its analytic
        rounding excused, on the scale `overall` of the whole gradient (a bias before a
        normalisation: its gradient is rounding residue of the others')."""
        indices = results.indices
        own = fd.rms(self.analytic[indices])
        size = np.full(len(indices), max(own, overall))
        floor = analytic_floor(self.analytic[indices], size, self.eps[indices], self.rtol, FLAT_ULPS)
        codes = judge(results.estimates, size, floor).codes
        codes = np.where(self.ragged[indices] & (codes != NONFINITE), NOISE, codes).astype(np.int8)
        return ElementResults(indices, results.estimates, codes, floor)

    def least_floor(self, indices: np.ndarray) -> np.ndarray:
        """The analytic floor `codes` gives the coordinates `indices` at the least: each tensor's
        typical size taken from the analytic gradient alone (`codes` takes the larger of that and
        the numerical one's)."""
        typical = np.empty(len(indices))
        for leaf in self.params.leaves:
            inside = (indices >= leaf.offset) & (indices < leaf.offset + leaf.size)
            if np.any(inside):
                typical[inside] = float(np.median(np.abs(self.analytic[leaf.slice])))
        return analytic_floor(self.analytic[indices], typical, self.eps[indices], self.rtol)

    def undetectable(
        self, estimates: fd.Estimates, codes: np.ndarray, floor: np.ndarray, indices: np.ndarray
    ) -> np.ndarray:
        """`undetectable` for the coordinates `indices`, except that where the loss is ragged (no
        derivative at this precision) anything can hide."""
        return np.where(self.ragged[indices], np.inf, undetectable(estimates, codes, floor))
