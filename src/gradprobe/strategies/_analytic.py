"""The gradient under test: the user's `grad` at the point, and how far to trust its last digits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _passes as passes
from .._errors import GradprobeError
from ..estimate import _differences as fd
from ..estimate._calling import call_user
from ..estimate._objective import Objective
from ..params._matching import flatten_gradient
from ..params._params import Leaf, Params


def analytic_gradient(
    grad: Callable[[Any], Any], params: Params, *, tree: Any = None, out: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """`grad` at `params` (given as `tree`, a fresh copy of them, or a new one), flat (in `out` if
    given), and the names of the extra entries it returned."""
    # A GradprobeError from `grad` passes through: it already names its argument (`jac` in check_jacobian).
    result = call_user(grad, "grad", params.copy() if tree is None else tree)
    return flatten_gradient(params, result, argument="grad", out=out)


def gradient_spread(
    grad: Callable[[Any], Any], user_params: Params, analytic: np.ndarray, notes: list[str], objective: Objective
) -> np.ndarray:
    """How much two identical calls of `grad` differ, per element (zero for a deterministic one).

    The second call gets its copy of the parameters in the objective's hand-off vector and is
    flattened into a work vector of the check's: a fresh vector of millions costs more in page
    faults than the copy.
    """
    scratch = objective.work(1, analytic.size)[0][: analytic.size]
    again, _ = analytic_gradient(grad, user_params, tree=objective.at_start(user_params), out=scratch)
    if passes.equal(again, analytic):
        # A read-only zero of the right length, holding no memory.
        return np.broadcast_to(np.float64(0.0), analytic.shape)
    spread = np.abs(again - analytic)  # a fresh vector: `scratch` is for the stages that follow
    notes.append(
        f"`grad` is non-deterministic: two identical calls differ by up to {spread.max():.2e}; "
        "that spread is added to the error bars."
    )
    return spread


#: A correct backward at lower precision differs from the same backward in float64 by its
#: rounding, in ulps of the larger of the element and its tensor's RMS gradient. Its sums run in
#: float32, and the longer they are the more they round: measured on float32 CNN, GELU MLP,
#: transformer and LSTM gradients, at most 20 ulps of float32; PyTorch's float32 `ctc_loss`
#: (log-space sums over 50 time steps) reaches 294 on one element of its operator-set samples; the
#: bias of a Conv2d-ReLU net, summed over 16 x 64 x 64 activations per channel, 2,072
#: (`python benchmarks/float32_rounding.py`; 1,024 FAILed such nets "in float32 only"). Up to this
#: many ulps of float32 (9.8e-4) count as rounding (added to the error bars); a backward wrong in
#: float32 only by more (1.01x) still fails...
ROUNDING_ULPS = 8192
#: ...or, for a gradient computed in a coarser dtype, up to this many ulps of that dtype. Its sums
#: still run in float32 (torch's CPU bfloat16 and float16 matmul, conv and sum add 4096 ones up to
#: 4096, not 256 or 2048), but every operation stores its result in the coarse dtype: measured on
#: the bfloat16, float16 and autocast GELU MLPs, ReLU CNNs and attention blocks of
#: tests/test_low_precision.py (20 seeds each), at most 5 ulps, but for the CNNs' tensors whose
#: relu input rounded across its kink (up to 73 ulps of bfloat16, 351 of float16: see below).
STORAGE_ULPS = 16
#: ...and so does up to this many times the rounding measured directly: the spread of the same
#: gradient at points a few ulps (`ROUNDING_MOVE`, of the dtype it computes in) of each parameter
#: away, one move and its opposite. The exact gradient barely moves there, its rounding moves as
#: much as it is large: a gradient that is a small difference of large terms (a loss nearly
#: invariant to its parameters) rounds far beyond 1024 ulps of itself, and is still right. And a
#: low-precision forward that rounds a relu's input across its kink (the float64 one does not)
#: takes the other branch, whose gradient one of the two opposite moves reaches as well. A bug at
#: low precision moves with the point no more than a right gradient does, so it stands out of both.
ROUNDING_MARGIN, ROUNDING_MOVE = 8.0, 4
#: ...and in a tensor whose gradient is far below the whole gradient's, at least this many ulps of
#: the whole gradient's RMS (as the judge allows such a tensor, `judge._verdict.ANALYTIC_ULPS`). A
#: bias feeding a batch norm has an exact gradient of zero, and float32's is the rounding of sums of
#: terms of the whole gradient's size: measured 2e-9 and 7e-10 on Linear-BatchNorm1d nets whose
#: gradient's RMS is 5.3e-3 (16 ulps of it: 1e-8), which were FAILed "in float32 only".
FLAT_ULPS = 16
#: ...and in a tensor whose float64 gradient is zero at float32's resolution of the whole gradient
#: (every element within `ZERO_ULPS` ulps of float32 of its RMS: a conv bias feeding a batch norm),
#: up to this fraction of the whole gradient's RMS. Its low-precision gradient is nothing but
#: the rounding of sums over the batch, which grows with their length:
#: `python benchmarks/float32_rounding.py` measured up to 671 ulps of float32 of the RMS (8e-5) for
#: the bias of a Conv2d-BatchNorm2d net over 64 x 32 x 32 activations per channel; 107 FAILed such
#: nets "in float32 only" under the 16 ulps above. A float32-only error below this in such a tensor
#: passes as rounding; the tensor's resolution (and `guarantee.rounding`) covers what was excused.
FLAT_RESIDUE, ZERO_ULPS = 2e-3, 1024


@dataclass(frozen=True)
class LowPrecision:
    """`grad` at the parameters' own precision against `grad` in float64 (the float64 reference).

    precise : `grad` evaluated in float64, flat.
    allowance : per element, the part of the difference that counts as rounding: the difference
        itself, at most `ROUNDING_ULPS` ulps of float32 or `STORAGE_ULPS` of `computed_in` of the
        element's scale, or more where measured; it widens the error bars.
    beyond : per element, whether the difference exceeds what the allowance excuses (a backward
        wrong at low precision only, or rounding far beyond the usual there).
    computed_in : the coarsest dtype `grad` computed in, whose rounding the allowance is for.
    judged_at : the parameters in the dtypes whose rounding the judge still assumes for the
        gradient (16 ulps of it, `judge._verdict.ANALYTIC_ULPS`): float32 for bfloat16 and float16
        ones, whose own rounding the allowance measures (16 ulps of bfloat16 are an eighth of it).
    unavailable : why `grad` could not run in float64 (its error), else None. `precise` is then
        the low-precision gradient itself, and the allowance the whole of what rounding may be.
    """

    precise: np.ndarray
    allowance: np.ndarray
    beyond: np.ndarray
    computed_in: np.dtype
    judged_at: Params
    unavailable: str | None = None


def gradient_rounding(
    grad: Callable[[Any], Any], params: Params, user_params: Params, analytic: np.ndarray
) -> LowPrecision | None:
    """With the loss evaluated in float64, how much of `grad`'s result is its own rounding (None
    when the parameters are float64 already, or `grad` fails in float64).

    The numerical side then measures the exact gradient, while `grad` rounds in the parameters'
    own precision (or a coarser one it computes in, `computed_precision`), by more than a fixed
    number of ulps after a deep backward pass. The same `grad` in float64 measures that rounding,
    of which only `ROUNDING_ULPS` ulps of float32, or `STORAGE_ULPS` of the dtype it computes in,
    are excused (more where measured), so a backward that is wrong only at low precision (an
    overflow, a cancellation, a branch on the dtype) still disagrees with the numerical side.
    """
    if all(leaf.dtype == user.dtype for leaf, user in zip(params.leaves, user_params.leaves)):
        return None
    try:
        precise, _ = analytic_gradient(grad, params)
        unavailable = None
    except GradprobeError as error:
        # A custom backward that keeps a float32 tensor of its own (a batch it closes over) mixes
        # it with float64 ones and raises: there is no float64 run, and the whole allowance is
        # what the float32 one may round by (without it every such correct check FAILed).
        precise, unavailable = analytic, str(error)
    computed_in = computed_precision(grad, user_params)
    eps = float(np.finfo(computed_in).eps)
    ulps = max(ROUNDING_ULPS * float(np.finfo(np.float32).eps), STORAGE_ULPS * eps)
    measured = _measured_rounding(grad, user_params, analytic, eps)
    if eps <= float(np.finfo(np.float32).eps) and unavailable is None:
        locked = _locked_rounding(grad, params, user_params, analytic - precise)
        measured = np.maximum(measured, _at_least_typical(locked, user_params, LOCKED_TYPICAL))
    allowance = np.zeros_like(precise)
    beyond = np.zeros(len(precise), dtype=bool)
    whole = fd.rms(precise[np.isfinite(precise)])
    with np.errstate(invalid="ignore", over="ignore"):
        # At least half an ulp, the rounding of the stored result alone: the measured difference can
        # be smaller by chance, and bars that narrow read the rounding of the other elements as a
        # disagreement with a constant factor (an error of 1.1x would not be named as such).
        difference = np.maximum(np.abs(precise - analytic), 0.5 * eps * np.abs(precise))
        for leaf in user_params.leaves:
            part = precise[leaf.slice]
            finite = part[np.isfinite(part)]
            scale = np.maximum(np.abs(part), fd.rms(finite) if finite.size else 0.0)
            cap = np.maximum(ulps * scale, ROUNDING_MARGIN * measured[leaf.slice])
            cap = np.maximum(cap, FLAT_ULPS * eps * whole)
            if finite.size and np.max(np.abs(finite)) <= ZERO_ULPS * float(np.finfo(np.float32).eps) * whole:
                cap = np.maximum(cap, FLAT_RESIDUE * whole)  # zero at this precision: rounding residue only
            # Below the dtype's normal range a value keeps no relative precision, and one below its
            # subnormals (the gradient of a product of 125 values, about 1e-54) is 0 there.
            cap = np.maximum(cap, float(np.finfo(computed_in).smallest_normal))
            allowance[leaf.slice] = cap if unavailable else np.minimum(difference[leaf.slice], cap)
            beyond[leaf.slice] = ~(np.abs(precise[leaf.slice] - analytic[leaf.slice]) <= cap)
    # Measured, not estimated: it enters the error bars once (spread is scaled by ERROR_BAR_FACTOR).
    allowance = np.where(np.isfinite(allowance), allowance, 0.0) / fd.ERROR_BAR_FACTOR
    return LowPrecision(precise, allowance, beyond, computed_in, _judged_at(user_params), unavailable)


def computed_precision(grad: Callable[[Any], Any], user_params: Params) -> np.dtype:
    """The coarsest dtype `grad` computes in: its parameters' (a float64 scalar times a float32 sum
    rounds like float32), or a coarser one it says it used, as `grad.computed_in` (the torch
    adapter's, under autocast: float32 parameters, bfloat16 arithmetic)."""
    dtypes = [leaf.dtype for leaf in user_params.leaves]
    said = getattr(grad, "computed_in", None)
    if said is not None:
        dtypes.append(np.dtype(said))
    return max(dtypes, key=lambda dtype: float(np.finfo(dtype).eps))


def _judged_at(user_params: Params) -> Params:
    """`user_params` with the leaves coarser than float32 in float32 (which holds them exactly)."""

    def dtype(leaf: Leaf) -> np.dtype:
        return np.dtype(np.float32) if np.finfo(leaf.dtype).eps > np.finfo(np.float32).eps else leaf.dtype

    values = user_params.values
    leaves = {leaf.path: leaf.as_tensor(values[leaf.slice].reshape(leaf.shape).astype(dtype(leaf))) for leaf in user_params.leaves}
    return Params(user_params.with_leaves(leaves))


def _moved_gradients(grad: Callable[[Any], Any], user_params: Params, eps: float | np.ndarray) -> list[np.ndarray]:
    """`grad` at two points a few ulps (of `eps`) of each parameter away, one move and its
    opposite (seeded), in the user's dtypes (an error there is an error)."""
    rng = np.random.default_rng(0)
    values = user_params.values
    ulps = rng.integers(1, ROUNDING_MOVE + 1, values.size) * rng.choice([-1.0, 1.0], values.size)
    return [analytic_gradient(grad, Params(user_params.build(values * (1.0 + sign * ulps * eps))))[0] for sign in (1.0, -1.0)]


#: ...and so does up to `ROUNDING_MARGIN` times the rounding seen farther away, at moves of these
#: fractions of each parameter (the larger of the two): a float32 gradient that is a small
#: difference of terms near 1 (a classifier trained until its softmax gives the right class
#: 1 - 1e-5: `p - 1` keeps 2 or 3 digits) rounds by 0.5% of itself, and a move of a few ulps leaves
#: every term's rounding as it was; a move of 1e-3 changes `p - 1` by about 1% of itself, a
#: couple of its ulps, and one of 8e-3 by more (with 1e-3 alone, 3 of 36 small classifiers trained
#: to a loss near 1e-5 were still FAILed "in float32 only"; with both, none). At these distances
#: the exact gradient moves too, so the float64 reference is taken there as well
#: (`_locked_rounding`). The price: in such a model a float32-only error of a few percent is
#: within the bars (a 2% one passed at a stated resolution of 4e-2).
LOCKED_MOVES = (2.0**-10, 2.0**-7)
#: That second difference sees only part of the rounding (a third of it at the median element of
#: trained classifiers' tensors, and at some elements a hundredth: part of the rounding stays as
#: it was over the move too), so each element's is raised to this many times its tensor's median:
#: the largest float32 rounding measured there, |g32 - g64|, is 10 to 13 times that median (an
#: attention block, GELU classifiers with cross-entropy and with BCE, trained to a loss of 1e-5).
LOCKED_TYPICAL = 4.0


def _locked_rounding(grad: Callable[[Any], Any], params: Params, user_params: Params, difference: np.ndarray) -> np.ndarray:
    """Per element, how much the float32 `grad`'s difference from the float64 reference changes
    between the point and two points `LOCKED_MOVES` of each parameter away, one move and its
    opposite: half the second difference (the larger over the two sizes), in which a difference
    that is smooth in the parameters (a float32-only factor, its change along the move) cancels and
    rounding does not. Both gradients at the same float32 points: kinks crossed move both alike.
    What was measured before `grad` fails at a point."""
    rng = np.random.default_rng(1)
    values = user_params.values
    shape = rng.uniform(0.5, 1.0, values.size) * rng.choice([-1.0, 1.0], values.size)
    measured = np.zeros_like(difference)
    for size in LOCKED_MOVES:
        moved = []
        for sign in (1.0, -1.0):
            point = Params(user_params.build(values * (1.0 + sign * size * shape)))  # rounded to the user's dtypes
            try:
                low, _ = analytic_gradient(grad, point)
                high, _ = analytic_gradient(grad, Params(params.build(point.values)))
            except GradprobeError:
                return measured
            moved.append(low - high)
        with np.errstate(invalid="ignore", over="ignore"):
            second = np.abs(moved[0] + moved[1] - 2.0 * difference) / 2.0
        measured = np.maximum(measured, np.where(np.isfinite(second), second, 0.0))
    return measured


def _measured_rounding(grad: Callable[[Any], Any], user_params: Params, analytic: np.ndarray, eps: float) -> np.ndarray:
    """Per element, how far `grad` moves at the two points of `_moved_gradients`: its own
    rounding, measured (0 where it moves to a non-finite value), at least its tensor's typical."""
    spread = np.zeros_like(analytic)
    for again in _moved_gradients(grad, user_params, eps):
        with np.errstate(invalid="ignore", over="ignore"):
            step = np.abs(again - analytic)
        spread = np.maximum(spread, np.where(np.isfinite(step), step, 0.0))
    # Moves of a few ulps of bfloat16 or float16 (1e-2 of each parameter) change the exact gradient
    # by more than its rounding: that, spread over a tensor, would excuse a 1.5x error at most elements.
    return _at_least_typical(spread, user_params) if eps <= float(np.finfo(np.float32).eps) else spread


def _at_least_typical(spread: np.ndarray, user_params: Params, factor: float = 1.0) -> np.ndarray:
    """`spread`, raised in each tensor to `factor` times its median there. A gradient that is a difference of
    large terms comes out in steps of their ulp: two moves can leave an element's value as it was
    (a float32 quadratic 1e-5 from its minimum: 0 measured at one element, 1e-7 to 1e-6 at the
    others, its own rounding 1e-7), while every element of the tensor rounds alike. The median, not
    the RMS: a few elements whose moves cross a kink (a relu's input, in bfloat16) would excuse an
    error of half the gradient everywhere else."""
    return np.maximum(spread, factor * _medians(spread, user_params), out=spread)


def _medians(values: np.ndarray, user_params: Params) -> np.ndarray:
    """Per element, the median of `values` over its tensor."""
    return np.concatenate([np.full(leaf.size, np.median(values[leaf.slice])) for leaf in user_params.leaves])


#: A second difference above this fraction of an element (or of its tensor's RMS), and above
#: `KINK_OUTLIER` times its tensor's median, is a kink crossed.
KINKED, KINK_OUTLIER = 1e-2, 16.0


def own_rounding(grad: Callable[[Any], Any], user_params: Params, analytic: np.ndarray, held: tuple[str, ...] = ()) -> np.ndarray:
    """`grad`'s rounding at its own precision, for the error bars (the judge assumes 16 ulps of an
    element or its tensor's RMS, `judge._verdict.ANALYTIC_ULPS`): a gradient that is a small
    difference of large terms (a least-squares fit near an exact one: its residuals cancel) rounds
    far beyond that, and was FAILed. Measured as half the second difference of `grad` at the two
    points of `_moved_gradients`, in which the exact gradient's change (the Hessian times the
    move) cancels and a wrong formula's does too; `ROUNDING_MARGIN` times it, entering the bars
    once (spread is scaled by ERROR_BAR_FACTOR). The tensors `held` (those the loss is ragged along:
    a target at a branch point, whose every move switches the branch for the whole gradient) keep
    their values."""
    eps = np.concatenate([np.full(leaf.size, 0.0 if leaf.name in held else float(np.finfo(leaf.dtype).eps)) for leaf in user_params.leaves])
    up, down = _moved_gradients(grad, user_params, eps)
    scale = np.concatenate([np.maximum(np.abs(analytic[leaf.slice]), fd.rms(analytic[leaf.slice])) for leaf in user_params.leaves])
    with np.errstate(invalid="ignore", over="ignore"):
        second = np.abs(up + down - 2.0 * analytic) / 2.0
        # A move across a kink (a tie in a max-pool flips its routing) changes an element by a
        # good part of itself: that is the kinks' business (their own verdict, and the nearby
        # point), not rounding, which stays far below, and alike over the tensor. At a minimum the
        # gradient is itself rounding residue, as large as every element's second difference:
        # rounding there, not kinks (a least-squares gradient `G @ w - c` at its solution was FAILed).
        second = np.where(np.isfinite(second), second, 0.0)
        second = np.where((second > KINKED * scale) & (second > KINK_OUTLIER * _medians(second, user_params)), 0.0, second)
    return ROUNDING_MARGIN * _at_least_typical(second, user_params) / fd.ERROR_BAR_FACTOR

