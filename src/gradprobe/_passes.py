"""Elementwise passes over vectors of millions, on torch's threads when the loss runs on them.

At every point of a check of a large model, gradprobe makes the point (a multiply and an add over
every parameter) and measures how far it moved (a subtraction); drawing a direction and scaling it
are a few passes more. numpy runs each on one core. When torch is loaded and runs on several
threads, these passes run in torch's own pool instead, on zero-copy views of the same arrays: they
use the cores the loss uses, between its calls, rather than competing with torch's workers (a
thread pool of gradprobe's own was slower; see benchmarks/RESULTS.md, "Scale").

Only exact operations go there (a product, sum, difference, absolute value, maximum or copy of
float64 values, each rounded once, never fused), so every number is the same bit for bit on either
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
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np

#: Below this many elements a torch call's fixed cost (a few microseconds) is more than the pass.
MIN_SIZE = 1 << 16
#: Whether torch may run the passes at all (tests switch it off to compare both sides).
ENABLED = True


def _torch(out: np.ndarray, *operands: Any) -> Any:
    """torch, when it should run a pass writing `out` from `operands` (arrays or Python floats)."""
    torch = sys.modules.get("torch")
    if torch is None or not ENABLED or out.size < MIN_SIZE or torch.get_num_threads() < 2:
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


def _run(numpy_op: Any, torch_name: str, out: np.ndarray, *operands: Any) -> np.ndarray:
    """``numpy_op(*operands, out=out)``, or torch's op of that name; the first operand an array."""
    torch = _torch(out, *operands)
    if torch is None:
        return numpy_op(*operands, out=out)
    getattr(torch, torch_name)(*(_view(torch, a) for a in operands), out=_view(torch, out))
    return out


def multiply(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    return _run(np.multiply, "mul", out, a, b)


def add(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    return _run(np.add, "add", out, a, b)


def subtract(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    return _run(np.subtract, "sub", out, a, b)


def maximum(a: np.ndarray, b: np.ndarray | float, *, out: np.ndarray) -> np.ndarray:
    torch = _torch(out, a, b)
    if torch is None or isinstance(b, np.ndarray):
        return _run(np.maximum, "maximum", out, a, b)
    # torch.maximum takes tensors only; clamp's lower bound is the same maximum (NaN stays NaN).
    torch.clamp(_view(torch, a), min=float(b), out=_view(torch, out))
    return out


def absolute(a: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    return _run(np.abs, "abs", out, a)


def copy(source: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    """`source` (of any real dtype, converted exactly to float64) written into `out`."""
    torch = sys.modules.get("torch")
    if (
        torch is None or not ENABLED or out.size < MIN_SIZE or torch.get_num_threads() < 2
        or out.dtype != np.float64 or source.dtype not in (np.float64, np.float32)
        or not out.flags.c_contiguous or not source.flags.c_contiguous
    ):
        np.copyto(out, source.reshape(out.shape))
        return out
    _view(torch, out).copy_(_view(torch, source).reshape(-1))
    return out
