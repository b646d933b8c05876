"""Calling the user's functions: fresh copies in, validated numbers out, evaluations counted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._errors import InvalidArgument, InvalidValue, UserFunctionError
from ._params import Params

# A point to evaluate: the flat parameter vector with `values` written at `indices`.
Point = tuple[np.ndarray, np.ndarray]


def require_callable(function: Any, argument: str) -> None:
    if not callable(function):
        raise InvalidArgument(
            f"`{argument}` must be callable, got {type(function).__name__}; pass a function "
            f"such as `lambda params: ...`.",
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
    if not isinstance(value, (np.ndarray, np.generic)) and getattr(value, "ndim", None) == 0:
        value = value.item()  # a 0-d framework tensor (torch, JAX, CuPy)
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
            f"`{argument}` returned a complex number for real parameters; return a real loss.",
            argument=argument,
        )
    return float(number)


class Objective:
    """The user's loss over flat parameter vectors.

    Every call gets a fresh copy of the parameter structure, so a loss that mutates its input
    cannot reach the user's arrays or ours. `nfev` counts the calls.
    """

    def __init__(self, loss: Callable[[Any], Any], params: Params, *, argument: str = "loss") -> None:
        self.loss = loss
        self.params = params
        self.argument = argument
        self.nfev = 0
        self.on_evaluation: Callable[[int], None] | None = None

    def _call(self, tree: Any, where: str) -> Any:
        self.nfev += 1
        try:
            result = self.loss(tree)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as error:
            raise UserFunctionError(
                f"`{self.argument}` raised {type(error).__name__} {where}: {error}", argument=self.argument
            ) from error
        if self.on_evaluation is not None:
            self.on_evaluation(1)
        return result

    def initial(self) -> float:
        """The loss at the user's point; it must be a finite scalar."""
        value = to_scalar(self._call(self.params.copy(), "at the starting point"), self.argument)
        if not np.isfinite(value):
            raise InvalidValue(
                f"`{self.argument}` returned {value} at the starting point; a gradient can only be "
                "checked where the loss is finite.",
                argument=self.argument,
            )
        return value

    def evaluate(self, points: Sequence[Point], *, dtype: Any = None) -> np.ndarray:
        """The loss at each point; non-finite values come back as NaN/inf, not as errors."""
        base = np.array(self.params.values)
        results = np.empty(len(points), dtype=complex if dtype is not None and np.dtype(dtype).kind == "c" else float)
        for k, (indices, values) in enumerate(points):
            flat = base.astype(results.dtype) if results.dtype.kind == "c" else base.copy()
            flat[indices] = values
            where = f"while probing `{self.params.leaf_of(int(indices[0])).name}`" if len(indices) else ""
            results[k] = to_scalar(
                self._call(self.params.build(flat, dtype=dtype), where),
                self.argument,
                allow_complex=results.dtype.kind == "c",
            )
        return results
