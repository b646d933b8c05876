"""Exact directional derivatives (forward-mode AD) in place of finite differences.

When the loss supports forward-mode automatic differentiation (``torch.func.jvp``,
``jax.jvp``, or a hand-written JVP), the derivative along a coordinate is known exactly up to
the rounding of the forward pass itself: there is no step, no truncation error and no
cancellation. Checking a reverse-mode gradient (a custom backward, a VJP) against it leaves only
rounding in the error bar, so much smaller errors are resolved than with finite differences.

The error bar of an exact derivative is `ROUNDING_ULPS` units in the last place of the larger of
the value and its tensor's typical gradient (the same allowance the Judge gives the analytic side),
plus the largest spread, over the tensor, between two identical evaluations, which is zero unless
the derivative is non-deterministic. Kinks cannot be recognised: forward mode returns one side's derivative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._differences import ERROR_BAR_FACTOR, Estimates
from .._errors import InvalidArgument, UserFunctionError
from ._objective import to_scalar
from ..params._params import Params

#: Rounding allowance of an exact derivative, in units of its dtype's machine epsilon.
ROUNDING_ULPS = 16

#: Largest number of coordinate tangents asked for at once (bounds the memory of batched tangents).
MAX_CHUNK = 256


class Oracle:
    """Exact derivatives of the loss along flat coordinates.

    Parameters
    ----------
    derivatives : callable
        ``derivatives(indices) -> values``: for an int array of flat coordinates, the derivative
        of the loss along each of them (one float each).
    size : int
        Number of parameters, to bound how many tangents are built at once.

    Examples
    --------
    >>> oracle = Oracle(lambda indices: 2.0 * indices, size=3)
    >>> oracle(np.arange(3)), oracle.nfev
    (array([0., 2., 4.]), 3)
    """

    def __init__(self, derivatives: Callable[[np.ndarray], Any], *, size: int) -> None:
        self.derivatives = derivatives
        # Tangents are dense (chunk x size); keep a chunk to about 16M numbers.
        self.chunk = max(1, min(MAX_CHUNK, 2**24 // max(size, 1)))
        self.nfev = 0

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        values = np.empty(len(indices))
        for start in range(0, len(indices), self.chunk):
            part = indices[start : start + self.chunk]
            answer = np.asarray(self.derivatives(part), dtype=np.float64).reshape(-1)
            if answer.shape != part.shape:
                raise InvalidArgument(
                    f"`oracle` returned {answer.size} derivatives for {part.size} tangents; return one per tangent.",
                    argument="oracle",
                )
            values[start : start + len(part)] = answer
            self.nfev += len(part)
        return values


def as_oracle(oracle: Any, params: Params, method: str) -> Oracle | None:
    """Validate the `oracle` argument of `check` and wrap a plain ``jvp(params, tangent)`` callable."""
    if oracle is None or isinstance(oracle, Oracle):
        pass
    elif not callable(oracle):
        raise InvalidArgument(
            f"`oracle` must be None or a callable `oracle(params, tangent) -> float`, got {type(oracle).__name__}.",
            argument="oracle",
        )
    if oracle is not None and method != "auto":
        raise InvalidArgument(
            f"`oracle` replaces finite differences, so `method` must stay 'auto'; got method={method!r}. "
            "Drop one of the two.",
            argument="oracle",
        )
    if oracle is None or isinstance(oracle, Oracle):
        return oracle
    return Oracle(_looped(oracle, params), size=params.size)


def _looped(jvp: Callable[[Any, Any], Any], params: Params) -> Callable[[np.ndarray], np.ndarray]:
    """One call of the user's ``jvp(params, tangent)`` per coordinate."""

    def derivatives(indices: np.ndarray) -> np.ndarray:
        values = np.empty(len(indices))
        for k, i in enumerate(indices):
            flat = np.zeros(params.size)
            flat[i] = 1.0
            try:
                value = jvp(params.copy(), params.build(flat))
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception as error:
                name = params.leaf_of(int(i)).name
                raise UserFunctionError(
                    f"`oracle` raised {type(error).__name__} on a tangent of `{name}`: {error}", argument="oracle"
                ) from error
            values[k] = to_scalar(value, "oracle")
        return values

    return derivatives


def exact_estimates(oracle: Oracle, params: Params, analytic: np.ndarray, spread: np.ndarray) -> Estimates:
    """Estimates for every coordinate from the oracle, with rounding-only error bars.

    `spread` is the analytic gradient's own non-determinism, added to the error bar as the
    finite-difference path does.
    """
    indices = np.arange(params.size)
    numeric = oracle(indices)
    repeat = oracle(indices)
    with np.errstate(invalid="ignore"):
        difference = np.abs(numeric - repeat)
    eps = np.empty(params.size)
    scale = np.empty(params.size)
    jitter = np.zeros(params.size)
    for leaf in params.leaves:
        part = leaf.slice
        eps[part] = np.finfo(leaf.dtype).eps
        # One pair of calls is a single draw of the jitter: an element whose two draws happen to
        # agree is no more precise than its neighbours, so the tensor's largest spread is used.
        if np.any(difference[part] > 0):
            jitter[part] = np.nanmax(difference[part])
        finite = numeric[part][np.isfinite(numeric[part])]
        rms = [float(np.sqrt(np.mean(analytic[part] ** 2)))]
        if finite.size:
            rms.append(float(np.sqrt(np.mean(finite**2))))
        scale[part] = max(rms)
    roundoff = ROUNDING_ULPS * eps * np.maximum(np.abs(numeric), scale) + jitter
    nan = np.full(params.size, np.nan)
    return Estimates(
        numeric=numeric,
        analytic=np.asarray(analytic, dtype=float),
        error=ERROR_BAR_FACTOR * (roundoff + spread),
        truncation=np.zeros(params.size),
        roundoff=roundoff,
        right=nan,
        left=nan,
    )
