"""Group testing: name the few wrong elements of a failing tensor in O(k log n) probes.

A tensor whose directional probe fails holds at least one wrong element. Split it in halves and
probe each half along its own random direction (restricted to the half): a half that passes holds
no error larger than the probe's resolution, a half that fails is split again. After
``log2(n)`` levels the blocks are single elements, probed as coordinates, which gives each wrong
element's index and its exact analytic and numerical values. With ``k`` wrong elements at most
``2 k`` blocks are probed per level: ``O(k log n)`` probes instead of ``n``.

When the error is everywhere (a factor 2 over the whole tensor) every block keeps failing. As soon
as a level of at least `EARLY_BLOCKS` blocks fails throughout, a random sample of `SAMPLE_SIZE`
elements is probed; if it finds the error common, bisection stops and the tensor is reported as
wrong throughout, with the sample. Bisection also stops once more than `MAX_FRONTIER` separate
blocks fail, which bounds the cost at ``O(MAX_FRONTIER log n)`` probes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..judge._verdict import FAIL, PASS

EARLY_BLOCKS = 8
SAMPLE_SIZE = 16
MAX_FRONTIER = 32
#: Sampled elements that must fail for the error to count as widespread.
WIDESPREAD_SAMPLED = 2

Block = tuple[int, int]


@dataclass(frozen=True)
class Localization:
    """Where the wrong elements of a block are.

    Attributes
    ----------
    located : flat indices of elements whose own coordinate probe fails, ascending.
    unsure : elements whose own probe could not decide (a kink, noise).
    widespread : bisection stopped because the error spans the block (see `sampled`).
    sampled : elements probed as a random sample when the error looked widespread.
    pending : failing blocks left unsplit because the budget ran out.
    probes : block and element probes spent.
    frontier : when bisection stopped for too many failing blocks, those blocks (and the undecided
        ones): the wrong elements not located lie in them.
    """

    located: tuple[int, ...] = ()
    unsure: tuple[int, ...] = ()
    widespread: bool = False
    sampled: tuple[int, ...] = ()
    pending: tuple[Block, ...] = ()
    probes: int = 0
    frontier: tuple[Block, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.pending


def halves(block: Block) -> list[Block]:
    """The two halves of a block of at least two elements.

    Examples
    --------
    >>> halves((0, 5))
    [(0, 2), (2, 5)]
    """
    a, b = block
    mid = (a + b) // 2
    return [(a, mid), (mid, b)]


def localize(
    block: Block,
    *,
    test_blocks: Callable[[list[Block]], Sequence[int]],
    test_elements: Callable[[np.ndarray], Sequence[int]],
    sample: Callable[[int], np.ndarray],
    affords: Callable[[int, int], bool] = lambda blocks, elements: True,
    early_blocks: int = EARLY_BLOCKS,
    sample_size: int = SAMPLE_SIZE,
    max_frontier: int = MAX_FRONTIER,
) -> Localization:
    """Bisect a failing `block` down to its wrong elements.

    Parameters
    ----------
    block : (start, stop), flat indices, known to fail.
    test_blocks : outcome code (`_verdict` codes) of a random-direction probe of each block.
    test_elements : outcome code of a coordinate probe of each element.
    sample : ``sample(count)`` -> flat indices of `count` random elements of `block`.
    affords : ``affords(blocks, elements)``, whether the budget allows that many more block and
        element probes.

    Examples
    --------
    A fake oracle with wrong elements 3 and 700 among 1000:

    >>> wrong = {3, 700}
    >>> def blocks(bs): return [FAIL if any(a <= w < b for w in wrong) else PASS for a, b in bs]
    >>> def elements(idx): return [FAIL if int(i) in wrong else PASS for i in idx]
    >>> found = localize((0, 1000), test_blocks=blocks, test_elements=elements, sample=None)
    >>> found.located, found.probes <= 2 * 2 * 10
    ((3, 700), True)
    """
    frontier: list[Block] = [block]
    located: list[int] = []
    unsure: list[int] = []
    sampled: tuple[int, ...] = ()
    probes = 0
    while frontier:
        children: list[Block] = []
        singles: list[int] = []
        for parent in frontier:
            parts = [parent] if parent[1] - parent[0] == 1 else halves(parent)
            for a, b in parts:
                if b - a == 1:
                    singles.append(a)
                else:
                    children.append((a, b))
        if not affords(len(children), len(singles)):
            return Localization(tuple(sorted(located)), tuple(sorted(unsure)), False, sampled, tuple(frontier), probes)
        codes = list(test_blocks(children)) if children else []
        single_codes = list(test_elements(np.array(singles, dtype=np.int64))) if singles else []
        probes += len(children) + len(singles)
        located += [i for i, code in zip(singles, single_codes) if code == FAIL]
        unsure += [i for i, code in zip(singles, single_codes) if code not in (PASS, FAIL)]
        failing = [c for c, code in zip(children, codes) if code == FAIL]
        # An undecided block (kink, noise) may still hide an error: keep splitting it.
        frontier = failing + [c for c, code in zip(children, codes) if code not in (PASS, FAIL)]
        throughout = len(children) >= early_blocks and len(failing) == len(children)
        too_many = len(frontier) + len(located) > max_frontier
        if (throughout and not sampled) or too_many:
            if not sampled:
                if not affords(0, sample_size):
                    return Localization(tuple(sorted(located)), tuple(sorted(unsure)), False, sampled, tuple(frontier), probes)
                sampled = tuple(int(i) for i in sample(sample_size))
                wrong = sum(1 for code in test_elements(np.array(sampled, dtype=np.int64)) if code == FAIL)
                probes += len(sampled)
            else:
                wrong = WIDESPREAD_SAMPLED
            if too_many or wrong >= WIDESPREAD_SAMPLED:
                return Localization(
                    tuple(sorted(located)), tuple(sorted(unsure)), True, sampled, (), probes, tuple(frontier)
                )
    return Localization(tuple(sorted(located)), tuple(sorted(unsure)), False, sampled, (), probes)
