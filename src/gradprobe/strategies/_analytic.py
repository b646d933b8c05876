"""The gradient under test: the user's `grad` at the point, and how far to trust its last digits."""

from __future__ import annotations

from collections.abc import Callable
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


def gradient_rounding(
    grad: Callable[[Any], Any], params: Params, user_params: Params, analytic: np.ndarray
) -> np.ndarray | None:
    """With the loss evaluated in float64 (`shadow`), the rounding of the gradient under test
    (None without `shadow`).

    The numerical side then measures the exact gradient, while `grad` rounds in the parameters'
    own precision, by more than a fixed number of ulps after a deep backward pass. The same
    `grad` called in float64 measures that rounding, which is added to the error bars (a wrong
    formula is just as wrong in float64, so no error hides in it). A `grad` that fails in
    float64 is left at the fixed floor.
    """
    if all(leaf.dtype == user.dtype for leaf, user in zip(params.leaves, user_params.leaves)):
        return None
    try:
        precise, _ = analytic_gradient(grad, params)
    except GradprobeError:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        rounding = np.abs(precise - analytic)
    # Measured, not estimated: it enters the error bars once (spread is scaled by ERROR_BAR_FACTOR).
    return np.where(np.isfinite(rounding), rounding, 0.0) / fd.ERROR_BAR_FACTOR
