"""Elementwise passes over vectors of millions, on torch's threads when the loss runs on them.

At every point of a check of a large model, gradprobe makes the point (a multiply and an add over
every parameter) and measures how far it moved (a subtraction); drawing a direction and scaling it
are a few passes more. numpy runs each on one core. When the loss runs in torch (`gp.torch.check`,
`check_module`: `on_torch_threads`) on several threads, these passes run in torch's own pool
instead, on zero-copy views of the same arrays: they use the cores the loss uses, between its
calls, rather than competing with torch's workers (a thread pool of gradprobe's own was slower;
see benchmarks/RESULTS.md, "Scale"). Elsewhere they stay in numpy even when torch is loaded: after
a numpy loss, its BLAS threads spin for a while, and torch's would compete with them (a check of a
numpy MLP of a million parameters took three times as long).

Only exact operations go there (a product, sum, difference, absolute value, maximum, comparison
or copy of float64 values, each rounded once, never fused), so every number is the same bit for bit on either
side (a NaN stays a NaN, perhaps with another sign bit): a verdict does not depend on whether
torch is loaded or on its thread count. Reductions (sums, dot products), whose rounding depends on
the order, and random draws stay in numpy.

Examples
--------
>>> a, b = np.arange(4.0), np.full(4, 0.5)
>>> add(a, b, out=np.empty(4)).tolist(), subtract(a, b, out=np.empty(4)).tolist()
([0.5, 1.5, 2.5, 3.5], [-0.5, 0.5, 1.5, 2.5])
>>> multiply(a, 3.0, out=np.empty(4)).tolist(), maximum(a, 1.5, out=np.empty(4)).tolist()
([0.0, 3.0, 6.0, 9.0], [1.5, 1.5, 2.0, 3.0])
>>> step_up(a, 2.0, out=np.empty(4)).tolist(), equal(a, a.copy()), equal(a, b)
([0.0, 1.0, 3.0, 4.0], True, False)
"""

from __future__ import annotations

import contextvars
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Below this many elements a torch call's fixed cost (a few microseconds) is more than the pass.
MIN_SIZE = 1 << 16
_on_torch_threads: contextvars.ContextVar[bool] = contextvars.ContextVar("gradprobe_on_torch_threads", default=False)


@contextmanager
def on_torch_threads() -> Iterator[None]:
    """Within the block (a check of a torch function), the passes may run on torch's threads."""
    token = _on_torch_threads.set(True)
    try:
        yield
    finally:
        _on_torch_threads.reset(token)


def _torch(out: np.ndarray, *operands: Any) -> Any:
    """torch, when it may run a pass writing `out` from `operands` (arrays or Python floats)."""
    torch = sys.modules.get("torch")
    if torch is None or not _on_torch_threads.get() or out.size < MIN_SIZE or torch.get_num_threads() < 2:
        return None
    for array in (out, *operands):
        if isinstance(array, np.ndarray) and (array.dtype != np.float64 or not array.flags.c_contiguous):
            return None
    return torch


def _view(torch: Any, array: Any) -> Any:
    """A tensor on `array`'s memory (a Python float stays one)."""
    if not isinstance(array, np.ndarray):
        return float(array)
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        # Read-only inputs (the parameters' flat view) are only read here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _pass(on_numpy: Callable[[], Any], on_torch: Callable[[Any], Any], out: np.ndarray, *operands: Any) -> np.ndarray:
    """Run the pass writing `out` from `operands` with torch where it may, else with numpy."""
    torch = _torch(out, *operands)
    on_numpy() if torch is None else on_torch(torch)
    return out


def _elementwise(numpy_op: Any, torch_name: str, out: np.ndarray, *operands: Any) -> np.ndarray:
    """``numpy_op(*operands, out=out)``, or torch's op of that name; the first operand an array."""
    return _pass(
        lambda: numpy_op(*operands, out=out),
        lambda torch: getattr(torch, torch_name)(*(_view(torch, a) for a in operands), out=_view(torch, out)),
        out, *operands,
    )  # fmt: skip


def make_point(origin: np.ndarray, t: float, direction: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    """``origin + t * direction`` with numpy's rounding (a product, then a sum: never fused)."""

    def on_numpy() -> None:
        np.multiply(direction, t, out=out)
        np.add(out, origin, out=out)

    def on_torch(torch: Any) -> None:
        tensor = _view(torch, out)
        torch.mul(_view(torch, direction), t, out=tensor)
        torch.add(tensor, _view(torch, origin), out=tensor)

    return _pass(on_numpy, on_torch, out, origin, direction)


def multiply(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    return _elementwise(np.multiply, "mul", out, a, b)


def add(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    return _elementwise(np.add, "add", out, a, b)


def subtract(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    return _elementwise(np.subtract, "sub", out, a, b)


def maximum(a: np.ndarray, b: float, *, out: np.ndarray) -> np.ndarray:
    """Each element of `a`, or `b` where that is larger."""
    # torch.maximum takes tensors only; clamp's lower bound is the same maximum (NaN stays NaN).
    return _pass(
        lambda: np.maximum(a, b, out=out), lambda torch: torch.clamp(_view(torch, a), min=float(b), out=_view(torch, out)), out, a
    )


def step_up(a: np.ndarray, at: float, *, out: np.ndarray) -> np.ndarray:
    """Each element of `a`, plus 1 where it is at least `at`."""

    def on_torch(torch: Any) -> None:
        tensor = _view(torch, a)
        torch.add(tensor, torch.ge(tensor, at), out=_view(torch, out))

    return _pass(lambda: np.add(a, a >= at, out=out), on_torch, out, a)


def equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `a` and `b` hold equal values (-0.0 equals 0.0, NaN equals nothing), in one pass
    that writes nothing of their size."""
    torch = _torch(a, b)
    if torch is None:
        return bool(np.array_equal(a, b))
    return bool(torch.equal(_view(torch, a), _view(torch, b)))


def absolute(a: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    return _elementwise(np.abs, "abs", out, a)


def copy(source: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    """`source` (of any real dtype, converted exactly to float64) written into `out`."""
    if source.dtype not in (np.float64, np.float32) or not source.flags.c_contiguous:
        np.copyto(out, source.reshape(out.shape))
        return out
    return _pass(
        lambda: np.copyto(out, source.reshape(out.shape)),
        lambda torch: _view(torch, out).copy_(_view(torch, source).reshape(-1)),
        out,
    )
