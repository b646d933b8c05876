"""Coordinate probes of chosen elements: the exact per-element answer for a subset.

Used where probing every coordinate is not the plan: the elements that localization narrows a
failure down to, the random sample that tells a widespread error from a few wrong elements,
``strategy="sample"``, and ``strategy="full"`` under a budget (in chunks, so that the budget can
stop it). Each element is probed (down its step ladder) and judged by the core pipeline,
`_Checker._probe` and `_Checker._judge`.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

from . import _differences as fd

COMPLEX_STEP = 1e-20
_FIELDS = tuple(f.name for f in fields(fd.Estimates))
_REQUIRED = tuple(f.name for f in fields(fd.Estimates) if f.default is MISSING)


def _stack(parts: list[fd.Estimates]) -> fd.Estimates:
    columns = {}
    for name in _FIELDS:
        values = [getattr(p, name) for p in parts]
        columns[name] = None if any(v is None for v in values) else np.concatenate([np.asarray(v) for v in values])
    return fd.Estimates(**columns)


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

    @staticmethod
    def concatenate(parts: list[ElementResults]) -> ElementResults:
        parts = [p for p in parts if len(p)]
        if not parts:
            return ElementResults.empty()
        return ElementResults(
            np.concatenate([p.indices for p in parts]),
            _stack([p.estimates for p in parts]),
            np.concatenate([p.codes for p in parts]),
            np.concatenate([p.floor for p in parts]),
        )


class CoordinateProber:
    """Probes single coordinates through the core pipeline, remembering every answer."""

    def __init__(self, checker: Any, f0: float, sigma: float, spread: np.ndarray) -> None:
        self.checker = checker
        self.f0, self.sigma, self.spread = f0, sigma, spread
        self.complex = checker.options.method == "complex"
        self._steps: np.ndarray | None = None
        # The judge measures each element against its tensor's typical gradient; without a full
        # numerical gradient, the analytic one stands in for it.
        self._scale_from = fd.Estimates(**{name: checker.analytic for name in _REQUIRED})
        # Answers so far: chunks in probing order, and where each element's answer sits. Only
        # probed elements take memory (a handful while localizing in a million parameters).
        self._chunks: list[ElementResults] = []
        self._where: dict[int, int] = {}
        self._all: ElementResults | None = None
        #: The largest noise any probe's error bars used: each chunk measures its own (see
        #: `_Checker._probe_noise`), starting from the difference tables' `sigma`.
        self.largest_noise = sigma

    @property
    def steps(self) -> np.ndarray:
        """Per-element steps, computed on first use (O(n): not needed when nothing is probed)."""
        if self._steps is None:
            checker = self.checker
            if self.complex:
                self._steps = COMPLEX_STEP * fd.element_scales(checker.params)
            else:
                self._steps = fd.choose_steps(checker.params, self.sigma, checker.analytic, checker.options.method)
        return self._steps

    @property
    def evaluations_per_element(self) -> int:
        """At least this many evaluations per element (more when its ladder descends)."""
        return 1 if self.complex else len(fd.OFFSETS)

    @property
    def most_per_element(self) -> int:
        return 1 if self.complex else 2 * fd.MAX_LEVELS

    def results(self) -> ElementResults:
        """Everything probed so far, in ascending flat order."""
        if not self._where:
            return ElementResults.empty()
        return self._gather(np.array(sorted(self._where), dtype=np.int64))

    def probe(self, indices: np.ndarray) -> ElementResults:
        """Outcomes for `indices` (in that order); elements probed before are not probed again."""
        indices = np.asarray(indices, dtype=np.int64)
        if not len(indices):
            return ElementResults.empty()
        fresh = np.array(sorted({int(i) for i in indices} - self._where.keys()), dtype=np.int64)
        if len(fresh):
            estimates, codes, floor = self._probe_fresh(fresh)
            offset = len(self._where)
            self._chunks.append(ElementResults(fresh, estimates, codes, floor))
            self._where.update((int(i), offset + k) for k, i in enumerate(fresh))
            self._all = None
            if np.array_equal(indices, fresh):
                return self._chunks[-1]
        return self._gather(indices)

    def _gather(self, indices: np.ndarray) -> ElementResults:
        if self._all is None:
            self._all = ElementResults.concatenate(self._chunks)
        return self._all.take(np.array([self._where[int(i)] for i in indices], dtype=np.int64))

    def _probe_fresh(self, indices: np.ndarray):
        checker = self.checker
        if self.complex:
            x = checker.params.values
            points = [(np.array([i]), np.array([x[i] + 1j * self.steps[i]])) for i in indices]
            values = checker.objective.evaluate(points, dtype=np.complex128)
            estimates = fd.complex_step(values, self.steps[indices], checker.analytic[indices])
        else:
            estimates = checker._probe(self.f0, self.sigma, indices, self.steps, self.spread)[0]
            self.largest_noise = max(self.largest_noise, float(getattr(checker, "sigma", self.sigma)))
        codes, floor = checker._judge(estimates, indices=indices, scale_from=self._scale_from)
        return estimates, np.asarray(codes), np.asarray(floor)
