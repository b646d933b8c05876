"""The gradient under test: the user's `grad` at the point, and how far to trust its last digits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import GradprobeError
from ..estimate import _differences as fd
from ..estimate._calling import call_user
from ..params._matching import flatten_gradient
from ..params._params import Params


def analytic_gradient(grad: Callable[[Any], Any], params: Params) -> tuple[np.ndarray, tuple[str, ...]]:
    """`grad` at `params`, flat, and the names of the extra entries it returned."""
    # A GradprobeError from `grad` passes through: it already names its argument (`jac` in check_jacobian).
    tree = call_user(grad, "grad", params.copy())
    return flatten_gradient(params, tree, argument="grad")


def gradient_spread(
    grad: Callable[[Any], Any], user_params: Params, analytic: np.ndarray, notes: list[str]
) -> np.ndarray:
    """How much two identical calls of `grad` differ, per element (zero for a deterministic one)."""
    again, _ = analytic_gradient(grad, user_params)
    spread = np.abs(np.subtract(again, analytic, out=again), out=again)  # `again` is ours: in place
    if not np.any(spread):
        # A read-only zero of the right length, holding no memory: the vector of millions just
        # made is freed for the vectors the check makes next.
        return np.broadcast_to(np.float64(0.0), spread.shape)
    notes.append(
        f"`grad` is non-deterministic: two identical calls differ by up to {spread.max():.2e}; "
        "that spread is added to the error bars."
    )
    return spread


#: A correct backward at lower precision differs from the same backward in float64 by its
#: rounding: measured on float32 CNN, GELU MLP, transformer and LSTM gradients, at most 20 ulps of
#: the larger of the element and its tensor's RMS gradient. Up to this many such ulps count as
#: rounding (added to the error bars)...
ROUNDING_ULPS = 256
#: ...and so does up to this many times the rounding measured directly: the spread of the same
#: gradient at `ROUNDING_PROBES` points a few ulps (`ROUNDING_MOVE`) of each parameter away. The
#: exact gradient barely moves there, its rounding moves as much as it is large: a gradient that is
#: a small difference of large terms (a loss nearly invariant to its parameters) rounds far beyond
#: 256 ulps of itself, and is still right. A bug at low precision moves with the point no more than
#: a right gradient does, so it stands out of both.
ROUNDING_MARGIN, ROUNDING_PROBES, ROUNDING_MOVE = 8.0, 2, 4


@dataclass(frozen=True)
class LowPrecision:
    """`grad` at the parameters' own precision against `grad` in float64 (the float64 reference).

    precise : `grad` evaluated in float64, flat.
    allowance : per element, the part of the difference that counts as rounding: the difference
        itself, at most `ROUNDING_ULPS` ulps of the element's scale; it widens the error bars.
    """

    precise: np.ndarray
    allowance: np.ndarray


def gradient_rounding(
    grad: Callable[[Any], Any], params: Params, user_params: Params, analytic: np.ndarray
) -> LowPrecision | None:
    """With the loss evaluated in float64, how much of `grad`'s result is its own rounding (None
    when the parameters are float64 already, or `grad` fails in float64).

    The numerical side then measures the exact gradient, while `grad` rounds in the parameters'
    own precision, by more than a fixed number of ulps after a deep backward pass. The same
    `grad` in float64 measures that rounding; only up to `ROUNDING_ULPS` of it is excused, so a
    backward that is wrong only at low precision (an overflow, a cancellation, a branch on the
    dtype) still disagrees with the numerical side.
    """
    if all(leaf.dtype == user.dtype for leaf, user in zip(params.leaves, user_params.leaves)):
        return None
    try:
        precise, _ = analytic_gradient(grad, params)
    except GradprobeError:
        return None
    allowance = np.zeros_like(precise)
    # The backward of any tensor may run at the coarsest precision among the parameters (a float64
    # scalar times a float32 sum is rounded like float32).
    eps = max(float(np.finfo(leaf.dtype).eps) for leaf in user_params.leaves)
    measured = _measured_rounding(grad, user_params, analytic)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(precise - analytic)
        for leaf in user_params.leaves:
            part = precise[leaf.slice]
            finite = part[np.isfinite(part)]
            scale = np.maximum(np.abs(part), fd.rms(finite) if finite.size else 0.0)
            cap = np.maximum(ROUNDING_ULPS * eps * scale, ROUNDING_MARGIN * measured[leaf.slice])
            allowance[leaf.slice] = np.minimum(difference[leaf.slice], cap)
    # Measured, not estimated: it enters the error bars once (spread is scaled by ERROR_BAR_FACTOR).
    allowance = np.where(np.isfinite(allowance), allowance, 0.0) / fd.ERROR_BAR_FACTOR
    return LowPrecision(precise, allowance)


def _measured_rounding(grad: Callable[[Any], Any], user_params: Params, analytic: np.ndarray) -> np.ndarray:
    """Per element, how far `grad` moves at points a few ulps of each parameter away (seeded): its
    own rounding, measured (0 where it moves to a non-finite value)."""
    rng = np.random.default_rng(0)
    values = user_params.values
    spread = np.zeros_like(analytic)
    for _ in range(ROUNDING_PROBES):
        moved = values.copy()
        for leaf in user_params.leaves:
            eps = float(np.finfo(leaf.dtype).eps)
            ulps = rng.integers(1, ROUNDING_MOVE + 1, leaf.size) * rng.choice([-1.0, 1.0], leaf.size)
            moved[leaf.slice] = values[leaf.slice] * (1.0 + ulps * eps)
        again, _ = analytic_gradient(grad, Params(user_params.build(moved)))  # in the user's dtypes: errors are errors
        with np.errstate(invalid="ignore", over="ignore"):
            step = np.abs(again - analytic)
        spread = np.maximum(spread, np.where(np.isfinite(step), step, 0.0))
    return spread

