"""Is a wrong gradient the right one rearranged? Layout hypotheses, read off the analytic side.

A hypothesis names a rearrangement ``T`` of a tensor's elements (a transpose, a permutation of
axes, a reversed axis, a shift by one along an axis) and so the true gradient it implies: the
user's gradient rearranged back, ``T^-1`` of it. The user's gradient of a kernel reversed along
its last axis implies the true one is the user's reversed back. The implied gradient is known at
every element from the analytic side alone, so any probed element tests it (`fits`), and a random
direction tests it over the whole tensor (the directional strategy confirms it on two). Another
tensor's gradient returned in this one's place (`Evidence.others`) is tested the same way, on
that tensor's numerical values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, permutations

import numpy as np

#: Axis permutations are tried for tensors of up to this many axes (4! = 24 at most).
MAX_PERMUTED_AXES = 4


@dataclass(frozen=True)
class Layout:
    """One rearrangement of a tensor of `shape`: `order`, `axis` (or `flips`, several axes
    reversed at once) and `shift` say which (`implied` applies it)."""

    kind: str  # "transposed", "permuted", "reversed" or "shifted"
    shape: tuple[int, ...]
    order: tuple[int, ...] | None = None
    axis: int | None = None
    shift: int = 0
    flips: tuple[int, ...] = ()

    def implied(self, analytic: np.ndarray, positions: np.ndarray, *, wrap: bool = False) -> np.ndarray:
        """The true gradient this layout implies at the flat `positions`, from the tensor's flat
        `analytic` gradient: NaN where it implies nothing (the slice a shift leaves empty), unless
        `wrap` (a shift that wraps around, as np.roll does: a whole tensor's prediction to test)."""
        index = list(np.unravel_index(positions, self.shape))
        valid = np.ones(len(positions), dtype=bool)
        if self.order is not None:
            # analytic == numeric.transpose(order): analytic[j] == numeric[k] where j[m] == k[order[m]].
            index = [index[k] for k in self.order]
        elif self.shift:
            # analytic == np.roll(numeric, shift, axis) away from the wrapped slice.
            moved = index[self.axis] + self.shift
            valid = wrap | ((moved >= 0) & (moved < self.shape[self.axis]))
            index[self.axis] = moved % self.shape[self.axis]
        else:
            for axis in self.flips or (self.axis,):
                index[axis] = self.shape[axis] - 1 - index[axis]
        values = np.asarray(analytic, dtype=float)[np.ravel_multi_index(index, self.shape)]
        return np.where(valid, values, np.nan)


def layouts(shape: tuple[int, ...], *, pairs: bool = False) -> Iterator[Layout]:
    """Every rearrangement of a tensor of `shape` worth trying, most common first. With `pairs`,
    the last axis holds a complex tensor's (real, imaginary) parts: the rearrangements are the
    complex tensor's, moving both parts of an element together (axes are the complex tensor's)."""
    if pairs:
        n = len(shape) - 1
        for layout in layouts(shape[:-1]):
            order = None if layout.order is None else (*layout.order, n)
            yield Layout(layout.kind, shape, order=order, axis=layout.axis, shift=layout.shift, flips=layout.flips)
        return
    if 2 <= len(shape) <= MAX_PERMUTED_AXES:
        for order in permutations(range(len(shape))):
            if order != tuple(range(len(shape))) and tuple(shape[i] for i in order) == shape:
                yield Layout("transposed" if len(shape) == 2 else "permuted", shape, order=order)
    for axis, length in enumerate(shape):
        if length >= 2:
            yield Layout("reversed", shape, axis=axis)
    # Two axes at once: a conv kernel rotated by 180 degrees (flipped along both spatial axes).
    for flips in combinations([axis for axis, length in enumerate(shape) if length >= 2], 2):
        yield Layout("reversed", shape, flips=flips)
    for axis, length in enumerate(shape):
        if length >= 3:  # along two elements a shift is a reversal
            yield Layout("shifted", shape, axis=axis, shift=1)
            yield Layout("shifted", shape, axis=axis, shift=-1)


@dataclass(frozen=True)
class Evidence:
    """What layout hypotheses are tested on: the tensor's `shape` and whole flat `analytic`
    gradient, the flat `positions` (within the tensor) of the probed values being diagnosed, and
    other tensors of the same shape with their numerical values and tolerances at those same
    positions (name -> (numeric, tolerance)), for a gradient returned in the wrong tensor's place."""

    shape: tuple[int, ...]
    analytic: np.ndarray
    positions: np.ndarray
    others: dict[str, tuple[np.ndarray, np.ndarray]]


def fits(expected: np.ndarray, measured: np.ndarray, tolerance: np.ndarray, wrong: np.ndarray) -> bool:
    """Whether `measured` (probed values, with their `tolerance`) is `expected` wherever that is
    known, and the hypothesis speaks about at least two of the `wrong` elements (one proves little)."""
    known = np.isfinite(expected) & np.isfinite(measured)
    if np.count_nonzero(known & wrong) < 2:
        return False
    return bool(np.all(np.abs(expected[known] - measured[known]) <= tolerance[known]))
