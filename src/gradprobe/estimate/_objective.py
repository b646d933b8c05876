"""The user's loss over flat parameter vectors: fresh copies in, validated numbers out, evaluations
counted. What the loss's exceptions become is `_calling`'s policy, on every path."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _passes as passes
from .._errors import InvalidArgument, InvalidValue, UserFunctionError
from ..params._params import Params
from ._calling import CONFIRMATION_EVALUATIONS, OutsideDomain, call_user
from ._executor import call_batch, evaluate_vectorized, evaluate_with_executor

# A point to evaluate: the flat parameter vector with `values` written at `indices`.
Point = tuple[np.ndarray, np.ndarray]


class LinePoints(Sequence[Point]):
    """Points on lines, ``x[block] + t direction``, each computed when it is read.

    A list of points that move millions of parameters holds one vector per point; here each is
    made when read, so that the serial loop of `Objective.evaluate` holds one at a time. With a
    `buffer`, a point read by index is written into it, and the next read overwrites it (the
    objective copies each point into fresh arrays for the loss first): no vector of millions is
    allocated per point beside the loss's own, and page faults on fresh vectors cost more than
    the arithmetic. A slice gives independent copies: what an executor's task carries.

    Parameters
    ----------
    origin : the flat parameter vector ``x``.
    lines : ``(block, direction, steps)`` per line: a slice of the flat vector, the direction on
        it, and the steps ``t`` along it; points are ordered line by line, step by step.
    finish : optional ``finish(block, values) -> values``, applied to each point (rounding to the
        parameters' dtypes, in place).
    buffer : optional scratch of at least the largest block's size, reused across reads.
    seen : optional ``seen(k, values)``, called with each point as it is computed (to measure
        what the loss will see while the values are at hand).

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> points = LinePoints(x, [(slice(0, 3), np.array([1.0, -1.0, 0.0]), [0.5, 2.0]), (slice(1, 2), np.ones(1), [1.0])])
    >>> len(points), points[1][1].tolist(), points[2]
    (3, [3.0, 0.0, 3.0], (slice(1, 2, None), array([3.])))
    >>> [values.tolist() for _, values in points[0:2]]
    [[1.5, 1.5, 3.0], [3.0, 0.0, 3.0]]
    """

    def __init__(
        self,
        origin: np.ndarray,
        lines: Sequence[tuple[slice, np.ndarray, Sequence[float]]],
        *,
        finish: Callable[[slice, np.ndarray], np.ndarray] | None = None,
        buffer: np.ndarray | None = None,
        seen: Callable[[int, np.ndarray], None] | None = None,
    ) -> None:
        self.origin, self.lines, self.finish, self.seen = origin, lines, finish, seen
        self._order = [(line, float(t)) for line, (_, _, steps) in enumerate(lines) for t in steps]
        self._buffer = buffer

    def __len__(self) -> int:
        return len(self._order)

    def block(self, k: int) -> slice:
        """The part of the flat vector that point `k` moves."""
        return self.lines[self._order[k][0]][0]

    def values(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Point `k`'s values on its block, written into `out` (a fresh array if None)."""
        line, t = self._order[k]
        block, direction, _ = self.lines[line]
        # The very rounding of `origin + t * direction`: the point that is measured is the one made.
        values = passes.make_point(self.origin[block], t, direction, out=np.empty_like(direction) if out is None else out)
        if self.finish is not None:
            values = self.finish(block, values)
        if self.seen is not None:
            self.seen(k, values)
        return values

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [(self.lines[self._order[i][0]][0], self.values(i)) for i in range(*k.indices(len(self)))]
        k = range(len(self))[k]  # negative indices; IndexError past the end (ends iteration)
        block = self.lines[self._order[k][0]][0]
        if self._buffer is None:
            return block, self.values(k)
        return block, self.values(k, out=self._buffer[: block.stop - block.start])


def require_callable(function: Any, argument: str, example: str = "lambda params: ...") -> None:
    if not callable(function):
        raise InvalidArgument(
            f"`{argument}` must be callable, got {type(function).__name__}; pass a function such as `{example}`.",
            argument=argument,
        )


def to_scalar(value: Any, argument: str, *, allow_complex: bool = False) -> complex | float:
    """Read the user's loss value as one number, or raise an error that names the fix."""
    if value is None:
        raise InvalidArgument(f"`{argument}` returned None; return the loss as a float.", argument=argument)
    if isinstance(value, tuple):
        raise InvalidArgument(
            f"`{argument}` returned a tuple of {len(value)}; return only the scalar loss "
            f"(for a function returning `(cost, cache)`, pass `lambda p: f(p)[0]`).",
            argument=argument,
        )
    if isinstance(value, (str, bytes)):
        raise InvalidArgument(
            f"`{argument}` returned {type(value).__name__}; return the loss as a float.", argument=argument
        )
    if isinstance(value, Iterator):
        raise InvalidArgument(
            f"`{argument}` returned an iterator ({type(value).__name__}); return the loss as a float "
            f"(a function containing `yield` is a generator function: use `return`).",
            argument=argument,
        )
    try:
        if not isinstance(value, (np.ndarray, np.generic)) and getattr(value, "ndim", None) == 0:
            value = value.item()  # a 0-d framework tensor (torch, JAX, CuPy)
    except Exception:
        pass  # left to the checks below, which name what was returned
    try:
        array = np.asarray(value)
    except Exception:
        array = np.asarray(None)
    if array.dtype == object or array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise InvalidArgument(
            f"`{argument}` returned {type(value).__name__}; return the loss as a float.", argument=argument
        )
    if array.size != 1:
        raise InvalidArgument(
            f"`{argument}` returned an array of shape {array.shape}, not a scalar; reduce it to one "
            "number (e.g. `.sum()`), or use `gp.check_vjp` for vector-valued functions.",
            argument=argument,
        )
    number = array.reshape(())[()]
    if np.iscomplexobj(array):
        if allow_complex:
            return complex(number)
        raise InvalidArgument(
            f"`{argument}` returned a complex number; a loss must be real (for complex values, return e.g. "
            "`np.abs(z)**2` or the real part).",
            argument=argument,
        )
    return float(number)


#: A loss whose value is at most this many of its smallest changes is at the floor of its rounding
#: (a classifier at margins of 33: 21 of them; `round(x, 3)` summed over three values: 353).
PLATEAU_FLOOR = 64.0


class Objective:
    """The user's loss over flat parameter vectors.

    Every call gets a fresh copy of the parameter structure, so a loss that mutates its input
    cannot reach the user's arrays or ours. `nfev` counts the calls.
    """

    def __init__(
        self,
        loss: Callable[[Any], Any],
        params: Params,
        *,
        argument: str = "loss",
        executor: Any = None,
        vectorized: bool = False,
    ) -> None:
        self.loss = loss
        self.params = params
        self.argument = argument
        self.nfev = 0
        self.on_evaluation: Callable[[int], None] | None = None
        # Where evaluations run (see `_executor`): an Executor's workers, and/or batched calls.
        self.executor = executor
        self.vectorized = vectorized
        self._light: Params | None = None
        self._scratch: dict[np.dtype, np.ndarray] = {}
        self._work: list[np.ndarray] = []
        self._handoff: np.ndarray | None = None
        self.probing = ""
        # Where the loss raised at probe points (see `_calling`); a worker's objective records, and
        # the caller's confirms, once per check, so that every path spends the same evaluations.
        self.domain = OutsideDomain()
        self.on_worker = False
        # How many finite values the loss returned, and how many of them were its first (the
        # point's) to the bit: see `on_a_plateau`.
        self.first_value: float | None = None
        self.finite_values = self.same_values = 0
        self.smallest_change = math.inf  # the smallest nonzero change from the first value seen
        # An evaluation budget (None: none). The confirmation's two calls are made only while it
        # affords them; without them, a raise is taken as the domain's edge (the note says where).
        self.evaluation_limit: int | None = None

    def light_params(self) -> Params:
        """The parameter structure without the user's arrays, for sending to workers."""
        if self._light is None:
            self._light = self.params.skeleton()
        return self._light

    def for_workers(self) -> Objective:
        """A fresh objective for one executor task: the same loss on the light parameter structure,
        evaluated serially (or in batches) on the worker, with counts and scratch of its own (tasks
        on threads run at once)."""
        worker = Objective(self.loss, self.light_params(), argument=self.argument, vectorized=self.vectorized)
        worker.on_worker = True
        return worker

    def work(self, count: int, size: int) -> list[np.ndarray]:
        """`count` float64 work vectors of at least `size` elements, kept for the check's life and
        shared by the stages that compute points (one at a time): a fresh vector of millions
        costs more in page faults than the arithmetic done in it."""
        while len(self._work) < count:
            self._work.append(np.empty(0))
        for k in range(count):
            if len(self._work[k]) < size:
                self._work[k] = np.empty(size)
        return self._work[:count]

    def _handoff_vector(self, size: int) -> np.ndarray:
        """A vector to make a point in whose pieces the loss then gets as its arrays.

        The last point's vector is reused unless the loss kept a piece of it (a reference count
        above this object's own and the call's): what the loss keeps is never overwritten. A fresh
        vector of millions per call would cost more in page faults than the copy it saves.
        """
        vector = self._handoff
        if vector is None or vector.size != size or sys.getrefcount(vector) > 3:
            vector = self._handoff = np.empty(size)
        return vector

    def at_start(self, params: Params | None = None) -> Any:
        """A fresh copy of the parameter structure at the starting point (of `params`, the
        objective's by default), for one call: made in the hand-off vector, whose pages the points
        that follow reuse, where `Params.copy` would map a vector of millions for each call."""
        params = self.params if params is None else params
        flat = passes.copy(params.values, out=self._handoff_vector(params.size))
        return params.build(flat, share=True)

    def _call(self, tree: Any, where: str) -> Any:
        self.nfev += 1
        self.probing = where  # for the progress bar
        result = call_user(self.loss, self.argument, tree, where=where)
        if self.on_evaluation is not None:
            self.on_evaluation(1)
        return result

    def initial(self) -> float:
        """The loss at the user's point; it must be a finite scalar."""
        if self.vectorized:
            value = float(evaluate_vectorized(self, [(np.array([], dtype=int), np.array([]))], where="at the starting point")[0])
        else:
            value = to_scalar(self._call(self.at_start(), "at the starting point"), self.argument)
        if not np.isfinite(value):
            raise InvalidValue(
                f"`{self.argument}` returned {value} at the starting point; a gradient can only be "
                "checked where the loss is finite.",
                argument=self.argument,
            )
        self._seen(np.array([value]))
        return value

    def _seen(self, values: np.ndarray) -> None:
        """Count the loss's finite values, those equal to the first, and its smallest change."""
        if values.dtype.kind == "c":  # complex steps: their imaginary parts carry the derivative
            return
        finite = values[np.isfinite(values)]
        if finite.size and self.first_value is None:
            self.first_value = float(finite[0])
        if self.first_value is None:  # nothing finite yet (a worker's first points, all off the domain)
            return
        self.finite_values += finite.size
        self.same_values += int(np.count_nonzero(finite == self.first_value))
        change = np.abs(finite - self.first_value)
        if np.any(change > 0):
            self.smallest_change = min(self.smallest_change, float(np.min(change[change > 0])))

    def on_a_plateau(self) -> bool:
        """Whether the loss returned its value at the point, to the bit, at most of the points
        evaluated so far, and that value is at most `PLATEAU_FLOOR` of its smallest changes: a loss
        at the floor of its own rounding (a classifier's, once every margin is large: 0.0, or 4e-17
        where a few of its ``log(1 + exp(-m))`` terms round to an ulp of 1), whose rounding is its
        terms', not an ulp of its value, and shows as no noise at all. (A staircase such as
        ``round(x, 3)`` is flat between its jumps too, but its value is many jumps high.)"""
        if self.first_value is None or self.same_values <= self.finite_values / 2:
            return False
        if math.isinf(self.smallest_change):  # it never changed: constant, unless it is 0.0, which rounding makes
            return self.first_value == 0.0
        return abs(self.first_value) <= PLATEAU_FLOOR * self.smallest_change

    def evaluate(self, points: Sequence[Point], *, dtype: Any = None) -> np.ndarray:
        """The loss at each point; non-finite values come back as NaN/inf, not as errors.

        A point's indices are an integer array or a slice (a contiguous block). A point that moves
        something is a probe point: where the loss raises, it is undefined, and its value is NaN
        (`OutsideDomain`, on every path).
        """
        if self.executor is not None and len(points) > 1:
            results = evaluate_with_executor(self, points, dtype)
        elif self.vectorized:
            results = evaluate_vectorized(self, points, dtype)
        else:
            results = self._evaluate_serially(points, dtype)
        if not self.on_worker and (self.evaluation_limit is None or self.nfev + CONFIRMATION_EVALUATIONS <= self.evaluation_limit):
            self.domain.confirm(lambda k: self._call_again(None if k is None else points[k], dtype))
        self._seen(results)
        return results

    def _call_again(self, point: Point | None, dtype: Any) -> Any:
        """The loss once more at `point` (None: the starting point), called here as this objective
        calls it."""
        flat = self.params.values.copy()
        if point is not None:
            flat[point[0]] = point[1]
        self.nfev += 1
        if self.vectorized:
            return call_batch(self, flat[None, :], dtype)
        return call_user(self.loss, self.argument, self.params.build(flat, dtype=dtype))

    def _evaluate_serially(self, points: Sequence[Point], dtype: Any) -> np.ndarray:
        results = np.empty(len(points), dtype=complex if dtype is not None and np.dtype(dtype).kind == "c" else float)
        # One scratch vector, restored after each point: `build` copies it into fresh arrays.
        # Made on first need (points that move every parameter do without) and kept: a fresh
        # vector of millions per call costs more in page faults than the copying.
        base = self.params.values
        flat = self._scratch.get(results.dtype)
        everything = slice(0, base.size)
        checked: tuple[Any, bool] = (None, False)  # the last index array, and whether it is arange(n)
        lines = isinstance(points, LinePoints) and dtype is None
        for k in range(len(points)):
            direct = lines and points.block(k) == everything
            if direct:
                # A point of a line through every parameter is made in the vector whose pieces the
                # loss gets: no copy (see `_handoff_vector`).
                indices, values = everything, points.values(k, out=self._handoff_vector(base.size))
            else:
                indices, values = points[k]
            first = indices.start if isinstance(indices, slice) else (int(indices[0]) if len(indices) else None)
            where = f"while probing `{self.params.leaf_of(first).name}`" if first is not None else ""
            covers = isinstance(indices, slice) and indices == everything
            if not covers and not isinstance(indices, slice) and len(indices) == base.size:
                if checked[0] is not indices:  # a table moving every parameter reuses one array
                    checked = (indices, bool(np.array_equal(indices, np.arange(base.size))))
                covers = checked[1]
            if covers and len(self.params.leaves) > 1:
                where = "at a point moving every parameter"  # a noise table, a direction through all tensors
            if covers:  # moves every parameter: no scratch, no fancy indexing
                tree = self.params.build(np.asarray(values, dtype=results.dtype), dtype=dtype, share=direct)
            elif not isinstance(indices, slice) and not len(indices):  # moves nothing (a repeat call)
                tree = self.at_start() if dtype is None else self.params.build(base.astype(results.dtype), dtype=dtype)
            else:
                if flat is None:
                    flat = self._scratch[results.dtype] = base.astype(results.dtype)
                flat[indices] = values
                try:
                    tree = self.params.build(flat, dtype=dtype)
                finally:
                    flat[indices] = base[indices]
            # A complex point holds the starting point's real values: an error there is the loss
            # refusing complex input (`require_complex_support` says so), not the edge of its domain.
            if first is None or results.dtype.kind == "c":  # or it moves nothing: the start again
                value = self._call(tree, where)
            else:
                try:
                    value = self._call(tree, where)
                except UserFunctionError as error:
                    value = self.domain.record(error, k, where)
                else:
                    self.domain.returned_values()
            results[k] = to_scalar(value, self.argument, allow_complex=results.dtype.kind == "c")
            del tree, values, value  # before the next point is made: one point of millions alive at a time
        return results
