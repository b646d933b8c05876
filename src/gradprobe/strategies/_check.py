"""`check`: the pipeline Params -> Plan -> Estimator -> Judge -> Report for a scalar loss.

`check` validates everything first, then sets the check up (the analytic gradient and its
spread, the loss at the point, its noise) and hands a `CheckContext` to the strategy that runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from ..estimate._coordinate_probes import CoordinateEstimator
from ..estimate._nearby import KINK_MOVE, nearby_point
from ..estimate._noise_model import NoiseModel
from ..estimate._objective import Objective, require_callable
from ..estimate._oracle import Oracle, as_oracle
from ..estimate._pages import without_huge_pages
from ..judge._elements import ElementJudge
from ..judge._verdict import overall_status
from ..params._complex import refuse_complex_step
from ..params._params import Params
from ..report._types import Finding, Report
from ._analytic import (
    ROUNDING_MARGIN, ROUNDING_ULPS, STORAGE_ULPS, analytic_gradient, gradient_rounding, gradient_spread, own_rounding,
)
from ._context import CheckContext
from ._coordinates import run_coordinates, run_full
from ._cost import choose_strategy, expected_evaluations, noise_plan, require_affordable, runs_unbounded
from ._directional_strategy import run_directional
from ._options import Options, validate_options
from ._points import check_at_points
from ._progress import Progress
from ._report_builder import undecidable
from ._shadow import shadowed_objective


def check(
    loss: Callable[[Any], Any],
    grad: Callable[[Any], Any],
    params: Any,
    *,
    strategy: str = "auto",
    method: str = "auto",
    rtol: float | None = None,
    seed: int = 0,
    shadow: bool | None = None,
    batch_size: int | None = None,
    oracle: Callable[[Any, Any], Any] | None = None,
    budget: int | str | timedelta | None = None,
    executor: Executor | None = None,
    vectorized: bool = False,
    progress: bool | None = None,
    confidence: float = 0.999,
    probes: int | None = None,
    points: int = 1,
) -> Report:
    """Check `grad` against numerical derivatives of `loss` at `params`.

    Parameters
    ----------
    loss : callable
        ``loss(params) -> float``. Receives a fresh copy of `params` on every call.
    grad : callable
        ``grad(params) -> gradient``, with the structure of `params`. Dict entries may be named
        like the parameter (``"W1"``) or with a leading ``d`` (``"dW1"``); extra entries are
        ignored and listed in `Report.ignored`.
    params : float, array, or nested dict/list/tuple of arrays
        The point to check at. Never modified. complex64 and complex128 arrays (and Python complex
        numbers) are checked through their real and imaginary parts; `grad` returns their gradient
        in PyTorch's convention, ``dL/dRe + i dL/dIm`` (docs/report.md, "Complex tensors").
    strategy : {"auto", "full", "directional", "sample"}
        "full" probes every coordinate (exact per-element answers; about 2 evaluations each on a
        right gradient, a whole step ladder for a few scouts per tensor and where one is needed).
        "directional" probes each tensor along random directions (a few evaluations per tensor,
        with a stated detection guarantee) and names the wrong elements of a failing tensor by
        group testing, in O(k log n) evaluations for k wrong elements. "sample" probes a random
        sample of coordinates per tensor. "auto" is "full" up to 1000 parameters (when `budget`
        allows it) and "directional" above. `Report.strategy` says which ran.
    method : {"auto", "richardson", "central", "complex"}
        Finite-difference estimate. "auto" is "richardson"; "complex" needs a loss that accepts
        complex parameters and is exact to rounding (for real parameters only).
    rtol : float, optional
        Relative disagreement to accept on top of the error bars (e.g. for an approximate
        gradient). By default only the error bars decide.
    seed : int
        Seed for the random directions; the same seed gives the same report.
    shadow : bool, optional
        Evaluate the loss in float64 even for lower-precision parameters (the gradient under test
        is still the one `grad` returns for the parameters as given). By default (None) on when a
        parameter is below float64 (float32, float16, bfloat16: `Report.reference` says "float64";
        a loss that fails in float64 is evaluated in its own dtype instead, with a note), off for
        float64 parameters.
    batch_size : int, optional
        The batch size m, so that a factor of m or 1/m is named as such in the diagnosis.
    oracle : callable, optional
        ``oracle(params, tangent) -> float``: the exact derivative of `loss` along `tangent`
        (forward-mode AD or a hand-written JVP; `tangent` has the structure of `params`). It
        replaces finite differences, leaving only rounding in the error bars.
    budget : int, str or datetime.timedelta, optional
        A cap on the work: an int number of loss evaluations (deterministic), or a duration
        ("30s", "5min", a timedelta). What the budget left out is listed in `Report.coverage`;
        tensors it left unchecked are inconclusive.
    executor : concurrent.futures.Executor, optional
        Evaluate the loss on its workers: a ``ProcessPoolExecutor``, or a Dask cluster's
        ``Client(...).get_executor()``. The loss must pickle. Results are identical to a serial run.
    vectorized : bool
        `loss` accepts parameters whose every leaf has a leading batch axis and returns one value
        per parameter set; many points are then evaluated in one call. `grad` is called as usual.
    progress : bool, optional
        Show a progress bar (rich or tqdm, when installed) for checks longer than about a second.
        By default only when standard error is a terminal; False turns it off.
    confidence : float
        For the randomized strategies: `Report.guarantee` states the error size caught with at
        least this probability. With ``probes=None``, raising it adds random directions.
    probes : int, optional
        Random directions per tensor ("directional") or sampled elements per tensor ("sample");
        by default as many directions as reach a resolution of 1e-4 at `confidence` (1 to 4),
        and 32 sampled elements.
    points : int
        Check at your point and at ``points - 1`` random points near it, where a zero bias, tied
        rows or a symmetric matrix no longer hide a wrong gradient. Every parameter ``x`` moves by
        ``u * 0.1 * s``: ``u`` uniform in [-1, 1] (drawn from `seed`), ``s = max(|x|, RMS of its
        tensor)`` (for a tensor of zeros the RMS of all parameters, at most 1), a nonzero ``x``
        at most half-way to zero. The report is the worst over the points, each point's own is
        in `Report.points`; each point gets an equal share of `budget`.

    Returns
    -------
    Report

    Examples
    --------
    >>> import numpy as np, gradprobe as gp
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> gp.check(lambda p: np.sum(p**3), lambda p: 3 * p**2, x).status
    'pass'
    >>> gp.check(lambda p: np.sum(p**3), lambda p: 6 * p**2, x).tensors["params"].diagnosis
    '2.00x'
    """
    options = validate_options(
        strategy=strategy, method=method, rtol=rtol, seed=seed, shadow=shadow, batch_size=batch_size,
        budget=budget, executor=executor, vectorized=vectorized, progress=progress, confidence=confidence,
        probes=probes, points=points,
    )  # fmt: skip
    require_callable(loss, "loss")
    require_callable(grad, "grad")
    with without_huge_pages():  # see `estimate._pages`: a large model's check makes and drops many arrays
        user_params = Params(params)
        refuse_complex_step(options.method, [leaf.name for leaf in user_params.leaves if leaf.complex])
        require_affordable(options, user_params)
        exact = as_oracle(oracle, user_params, method)

        def check_here(point: Params, point_options: Options) -> Report:
            if point is user_params:
                return _check_near_kinks(loss, grad, point, point_options, exact)
            if not isinstance(oracle, Oracle):  # a plain ``oracle(params, tangent)`` works at any point
                return _check_near_kinks(loss, grad, point, point_options, as_oracle(oracle, point, method))
            # An adapter's forward mode knows the user's point only.
            report = _check_near_kinks(loss, grad, point, point_options, None)
            note = "the forward-mode oracle is bound to your point: this point was checked with finite differences."
            return replace(report, notes=(*report.notes, note))

        return check_at_points(check_here, loss, grad, user_params, options)


def _check_near_kinks(
    loss: Callable[[Any], Any], grad: Callable[[Any], Any], point: Params, options: Options, exact: Oracle | None
) -> Report:
    """The check at `point`, and where kinks there leave a tensor undecided, the same check at a
    point clear of them (`Report.nearby`)."""
    report = _check_at(loss, grad, point, options, exact)
    if exact is None and not options.budget.bounded and _at_kinks(report):
        # No derivative to compare at the point: check the same code where there is one.
        nearby = _check_at(loss, grad, Params(nearby_point(point, options.seed, KINK_MOVE)), options, None)
        undecided = [t.name for t in report.tensors.values() if t.reason == "kink"]
        note = (
            f"kinks at the point leave {', '.join(undecided)} undecided there; the same check was run at a nearby "
            f"point (every parameter moved by up to {KINK_MOVE:.0e} of its scale), where the function is "
            "differentiable: `report.nearby`. It speaks about the gradient code, not about your point."
        )
        report = replace(report, nearby=nearby, nfev=report.nfev + nearby.nfev, notes=(*report.notes, note))
    return report


def _at_kinks(report: Report) -> bool:
    """Whether kinks at the point left some tensor undecided."""
    return any(t.status == "inconclusive" and t.reason == "kink" for t in report.tensors.values())


def _check_at(
    loss: Callable[[Any], Any], grad: Callable[[Any], Any], user_params: Params, options: Options, oracle: Oracle | None
) -> Report:
    """The check at one point."""
    analytic, ignored = analytic_gradient(grad, user_params)
    notes: list[str] = []
    objective, f0, reference = shadowed_objective(loss, user_params, options, notes)
    objective.evaluation_limit = options.budget.evaluations
    strategy = choose_strategy(options, user_params)
    with Progress(options.progress, total=expected_evaluations(options, strategy, user_params)) as bar:
        objective.on_evaluation = lambda count: bar.advance(count, objective.probing)
        context = _set_up(objective, user_params, analytic, options, grad, f0, strategy, notes, bar, oracle, reference)
        return _same_function(_run(context, strategy, ignored), loss, context)


#: Relative difference between the loss in its own precision and in float64, at the point, above
#: which the float64 copy is not taken for the function the low precision computes (correct
#: float32 forwards differ by ~1e-6): at least this, and at least `OTHER_FUNCTION_ULPS` ulps of the
#: dtype the gradient computed in (a bfloat16 forward is off by a few of its ulps, 7.8e-3 each).
OTHER_FUNCTION, OTHER_FUNCTION_ULPS = 1e-3, 64


def _same_function(report: Report, loss: Callable[[Any], Any], context: CheckContext) -> Report:
    """A failure "in float32 only" says the backward is wrong at low precision, which holds only if
    the float64 reference is the same function. An operation whose random draws depend on the dtype
    (`fractional_max_pool3d`) makes the float64 copy another one: then the failing tensors are
    inconclusive (reason "reference"). So are tensors whose relative difference is at most
    `ROUNDING_MARGIN` times the loss's own relative rounding there, where that rounding is beyond
    `OTHER_FUNCTION_ULPS` ulps of the dtype: a loss that is itself a cancellation (a float32
    classifier trained to a loss of 1e-5 computes it, and `p - 1` of its softmax, to 3 or 4
    digits), whose gradient rounds alike (a new user's GELU classifier was FAILed at one element,
    0.5% off). Costs one evaluation, only on that path."""
    suspect = [t for t in report.tensors.values() if t.status == "fail" and t.finding is not None and t.finding.dtype]
    if report.reference != "float64" or not suspect or not context.affords(1):
        return report
    # Through an objective of its own: a vectorized loss takes a batch of points, not one.
    native = Objective(loss, context.user_params, vectorized=context.options.vectorized).initial()
    size = max(abs(native), abs(context.f0))
    eps = float(np.finfo(context.low_precision.computed_in).eps) if context.low_precision is not None else 0.0
    rounds = abs(native - context.f0) / size if size else 0.0
    if not rounds > max(OTHER_FUNCTION, OTHER_FUNCTION_ULPS * eps):
        # A loss that rounds by more than `OTHER_FUNCTION_ULPS` of its dtype is in a cancellation.
        cancels = rounds > OTHER_FUNCTION_ULPS * eps
        suspect = [t for t in suspect if cancels and t.difference <= ROUNDING_MARGIN * rounds]
        if not suspect:
            return replace(report, nfev=report.nfev + 1)
    tensors = dict(report.tensors)
    for tensor in suspect:
        tensors[tensor.name] = replace(
            tensor, status="inconclusive", reason="reference", resolution=math.inf, taylor_slope=None,
            finding=Finding("reference"),
        )  # fmt: skip
    guarantee = report.guarantee
    if guarantee is not None:
        names = tuple(t.name for t in suspect if t.name not in guarantee.undecided)
        guarantee = replace(guarantee, undecided=(*guarantee.undecided, *names))
    note = (
        f"the loss at your point is {native:.6e} in its own precision but {context.f0:.6e} in float64, {rounds:.1e} of it "
        "(random draws that depend on the dtype, or the loss's own rounding in its precision: a cancellation, a point "
        "near a minimum?), so the disagreement of "
        f"{', '.join(t.name for t in suspect)} with it, seen in the low precision only, proves nothing; check with "
        "shadow=False, or farther from a minimum."
    )
    status = overall_status([t.status for t in tensors.values()])
    return replace(
        report, status=status, tensors=tensors, nfev=report.nfev + 1, notes=(*report.notes, note), resolution=math.inf,
        guarantee=guarantee,
    )  # fmt: skip


def _set_up(
    objective: Objective,
    user_params: Params,
    analytic: np.ndarray,
    options: Options,
    grad: Callable[[Any], Any],
    f0: float | None,
    strategy: str,
    notes: list[str],
    progress: Progress,
    oracle: Oracle | None,
    reference: str,
) -> CheckContext:
    """The loss at the point, `grad`'s spread and rounding, the noise: what every strategy needs."""
    f0 = objective.initial() if f0 is None else f0
    spread = gradient_spread(grad, user_params, analytic, notes, objective)
    low_precision = gradient_rounding(grad, objective.params, user_params, analytic)
    if low_precision is not None:
        spread = spread + low_precision.allowance
        if low_precision.unavailable:
            notes.append(
                f"`grad` could not run in float64 ({low_precision.unavailable}), so the {low_precision.computed_in} gradient is "
                f"compared with the float64 loss's derivatives directly: its whole rounding allowance ({ROUNDING_ULPS} ulps "
                f"of float32, or {STORAGE_ULPS} of bfloat16 or float16, of each element or its tensor's RMS) counts as "
                "rounding, and an error only at low precision smaller than that is not seen."
            )
    rng = np.random.default_rng(options.seed)
    noise = NoiseModel(notes)
    noise.measure(objective, analytic, f0, rng, noise_plan(strategy), per_tensor=not options.budget.bounded)
    if low_precision is None and strategy != "directional":  # elements judged one by one: two calls of `grad` are cheap beside them
        spread = spread + own_rounding(grad, user_params, analytic, held=noise.ragged_tensors)
    judged_at = user_params if low_precision is None else low_precision.judged_at
    judge = ElementJudge(objective.params, judged_at, analytic, options.rtol, noise.ragged_tensors)
    return CheckContext(
        objective=objective,
        user_params=user_params,
        analytic=analytic,
        f0=f0,
        options=options,
        noise=noise,
        estimator=CoordinateEstimator(objective, analytic, options.method, f0, noise, spread, judge.least_floor),  # type: ignore[arg-type]
        judge=judge,
        rng=rng,
        notes=notes,
        progress=progress,
        oracle=oracle,
        reference="forward" if oracle is not None else reference,
        precise=None if low_precision is None or low_precision.unavailable else low_precision.precise,
        low_precision=low_precision,
    )


def _run(context: CheckContext, strategy: str, ignored: tuple[str, ...]) -> Report:
    """Every coordinate at once when nothing can stop it early; else the strategy, in steps that
    a budget can stop."""
    if context.oracle is not None or runs_unbounded(context.options, strategy, context.params):
        return run_full(context, ignored)
    if strategy == "directional":
        report = run_directional(context, ignored)
    else:
        report = run_coordinates(context, ignored, strategy)
    return undecidable(report, context.noise.ragged_tensors) if context.noise.ragged else report
