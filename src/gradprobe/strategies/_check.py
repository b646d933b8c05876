"""`check`: the pipeline Params -> Plan -> Estimator -> Judge -> Report for a scalar loss."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np

from ..estimate import _differences as fd
from ..judge._diagnosis import diagnose
from .._errors import GradprobeError, InvalidArgument, UserFunctionError
from ..params._matching import flatten_gradient
from ..estimate._noise import POINTS, SPACING_RATIO, estimate_noise, noise_from_samples
from ..estimate._objective import LinePoints, Objective, call_user, require_callable
from ..estimate._executor import require_sendable
from ._options import Options, reported_options, validate_options
from ..estimate._oracle import Oracle, as_oracle, exact_estimates
from ..estimate._pages import without_huge_pages
from ..params._params import Params
from ._progress import Progress
from ..estimate._ladder import Ladder, coordinate_points, min_steps, round_at
from ..report._types import Coverage, Element, Report, TensorReport
from ._dispatch import DIRECTIONAL_NOISE, choose_strategy, expected_evaluations, needs_strategies, run_strategy
from ..judge._verdict import (
    ELEMENT_STATUSES,
    KINK,
    NOISE,
    NONFINITE,
    analytic_floor,
    judge,
    overall_status,
    relative_difference,
    resolution,
    safe_norm,
    tensor_status,
    undetectable,
)

WORST_KEPT = 5
# Difference tables (eight evaluations each) behind the noise estimate; twice as many for a loss
# of few parameters, whose rounding errors are the least random along a line.
NOISE_TABLES, FEW_PARAMETERS = 3, 16
# A tensor in which at least this fraction of the elements saw a kink is probed below the kinks' scale.
KINKED_FRACTION = 0.05
# The narrowest noise table moves each parameter by at least this many ulps.
SPACING_ULPS = 32
# Taylor test: the largest move (a fraction of each parameter's scale) and how many steps.
TAYLOR_MOVE, TAYLOR_STEPS = 0.05, 8
# Probes needed before their own noise measure (median of their fourth-order combinations) counts.
PROBE_NOISE_MINIMUM = 8
# A probe that saw no change at all is retried with steps this much larger, at most this often.
FLAT_GROWTH, FLAT_RETRIES = 64.0, 3
COMPLEX_STEP = 1e-20
#: Parameters of a dtype with a larger machine epsilon (float16) are probed in float64 by default.
SHADOW_EPS = 1e-4


@dataclass(frozen=True)
class _Elements:
    """Flat per-element results of the coordinate probes."""

    estimates: fd.Estimates
    codes: np.ndarray
    floor: np.ndarray


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
        The point to check at. Never modified.
    strategy : {"auto", "full", "directional", "sample"}
        "full" probes every coordinate (exact per-element answers, 4+ evaluations each).
        "directional" probes each tensor along random directions (a few evaluations per tensor,
        with a stated detection guarantee) and names the wrong elements of a failing tensor by
        group testing, in O(k log n) evaluations for k wrong elements. "sample" probes a random
        sample of coordinates per tensor. "auto" is "full" up to 1000 parameters (when `budget`
        allows it) and "directional" above. `Report.strategy` says which ran.
    method : {"auto", "richardson", "central", "complex"}
        Finite-difference estimate. "auto" is "richardson"; "complex" needs a loss that accepts
        complex parameters and is exact to rounding.
    rtol : float, optional
        Relative disagreement to accept on top of the error bars (e.g. for an approximate
        gradient). By default only the error bars decide.
    seed : int
        Seed for the random directions; the same seed gives the same report.
    shadow : bool, optional
        Evaluate the loss in float64 even for lower-precision parameters (the gradient under test
        is still the one `grad` returns for the parameters as given). By default (None) on when a
        parameter is float16, whose own finite differences cannot resolve a gradient (a note says
        so; a loss that fails in float64 is evaluated in float16 instead), off otherwise.
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
        probes=probes,
    )  # fmt: skip
    require_callable(loss, "loss")
    require_callable(grad, "grad")
    with without_huge_pages():  # see `_pages`: a large model's check makes and drops many arrays
        user_params = Params(params)
        exact = as_oracle(oracle, user_params, method)
        analytic, ignored = _analytic_gradient(grad, user_params)
        objective, f0, notes = _shadowed_objective(loss, user_params, options)
        checker = _Checker(objective, user_params, analytic, options, oracle=exact)
        checker.notes.extend(notes)
        with Progress(options.progress, total=expected_evaluations(options, user_params.size)) as bar:
            objective.on_evaluation = lambda count: bar.advance(count, objective.probing)
            checker.progress = bar
            return checker.run(grad, ignored, f0=f0)


def needs_shadow(params: Params) -> bool:
    """Whether some parameter's dtype is too coarse for finite differences to resolve a gradient.

    A float16 loss carries about 1e-3 relative noise, so its finite differences resolve only about
    a tenth of the gradient, whatever the step.
    """
    return any(float(np.finfo(leaf.dtype).eps) > SHADOW_EPS for leaf in params.leaves)


def _shadowed_objective(loss: Callable[[Any], Any], params: Params, options: Options) -> tuple[Objective, float | None, list[str]]:
    """The objective the probes evaluate: in float64 with `shadow` (by default, for float16 parameters).

    Returns the objective, the loss at the point when it was already evaluated (else None), and notes.
    """
    shadow = needs_shadow(params) if options.shadow is None else options.shadow
    if not shadow:
        require_sendable(loss, params, options.executor)
        return Objective(loss, params, executor=options.executor, vectorized=options.vectorized), None, []
    widened = Params(params.build(params.values, dtype=np.float64))
    require_sendable(loss, widened, options.executor)
    objective = Objective(loss, widened, executor=options.executor, vectorized=options.vectorized)
    if options.shadow:
        return objective, None, []  # asked for: a loss that fails in float64 is an error
    coarse = [f"`{leaf.name}`" for leaf in params.leaves if float(np.finfo(leaf.dtype).eps) > SHADOW_EPS]
    which = f"{', '.join(coarse)} {'is' if len(coarse) == 1 else 'are'} float16"
    try:
        f0 = objective.initial()
    except GradprobeError as error:
        native = Objective(loss, params, executor=options.executor, vectorized=options.vectorized)
        native.nfev = objective.nfev  # the failed float64 call counts
        return native, None, [
            f"the loss could not be evaluated in float64 ({error}), so it was evaluated in the parameters' own "
            f"precision ({which}): float16 finite differences resolve only about a tenth of a gradient; make the "
            "loss accept float64 parameters to check it more finely."
        ]
    return objective, f0, [
        f"the loss was evaluated in float64 ({which}, whose finite differences cannot resolve a gradient); the "
        "gradient under test is still the one `grad` computed in float16. Pass shadow=False to evaluate the loss "
        "in float16."
    ]


def _analytic_gradient(grad: Callable[[Any], Any], params: Params) -> tuple[np.ndarray, tuple[str, ...]]:
    # A GradprobeError from `grad` passes through: it already names its argument (`jac` in check_jacobian).
    tree = call_user(grad, "grad", params.copy())
    return flatten_gradient(params, tree, argument="grad")


def _undecidable(report: Report) -> Report:
    """A loss with no derivative at this precision (see `_Checker._noise`) decides nothing, whatever
    the strategy's probes happened to say."""
    tensors = {
        name: replace(
            tensor, status="inconclusive", reason="noise", resolution=float("inf"),
            diagnosis="no derivative at this precision", hint=None,
        )  # fmt: skip
        for name, tensor in report.tensors.items()
    }
    return replace(report, status="inconclusive", resolution=float("inf"), tensors=tensors)


class _Checker:
    """One run of the pipeline; holds what the stages share."""

    def __init__(
        self, objective: Objective, user_params: Params, analytic: np.ndarray, options: Options, oracle: Oracle | None = None
    ) -> None:
        self.objective = objective
        self.oracle = oracle
        self.params = objective.params
        self.user_params = user_params
        self.analytic = analytic
        self.options = options
        self.rng = np.random.default_rng(options.seed)
        self.notes: list[str] = []
        self.progress = Progress(False)  # check() replaces it with the visible one
        self._eps: np.ndarray | None = None

    @property
    def eps(self) -> np.ndarray:
        """Per element, the rounding of the analytic gradient: the parameters' own precision
        (made on first use: the directional strategy of a large model never needs it)."""
        if self._eps is None:
            self._eps = np.empty(self.user_params.size)
            for leaf in self.user_params.leaves:
                self._eps[leaf.slice] = np.finfo(leaf.dtype).eps
        return self._eps

    def run(self, grad: Callable[[Any], Any], ignored: tuple[str, ...], *, f0: float | None = None) -> Report:
        f0 = self.objective.initial() if f0 is None else f0
        spread = self._gradient_spread(grad)
        rounding = self._gradient_rounding(grad)
        if rounding is not None:
            spread = spread + rounding
        strategy = choose_strategy(self.options, self.params.size)
        sigma = self._noise(f0, **DIRECTIONAL_NOISE) if strategy == "directional" else self._noise(f0)
        if self.oracle is None and needs_strategies(self.options, strategy):
            report = run_strategy(self, strategy, f0, sigma, spread, ignored)
            return _undecidable(report) if self.ragged else report
        setup = self.objective.nfev
        self.progress.describe("every coordinate")
        if self.oracle is not None:
            elements = self._exact(spread)
        elif self.options.method == "complex":
            elements = self._complex(f0)
        else:
            elements = self._finite_differences(f0, sigma, spread)
        tensors = self._tensor_reports(f0, elements)
        e = elements.estimates
        nfev = self.objective.nfev + (self.oracle.nfev if self.oracle is not None else 0)
        return Report(
            status=overall_status([t.status for t in tensors.values()]),  # type: ignore[arg-type]
            difference=relative_difference(self.analytic, e.numeric),
            resolution=resolution(
                self._undetectable(e, elements.codes, elements.floor), e.numeric, safe_norm(self.analytic)
            ),
            nfev=nfev,
            tensors=tensors,
            ignored=ignored,
            notes=tuple(self.notes),
            method="forward" if self.oracle is not None else self.options.method,
            strategy="full",
            seed=self.options.seed,
            noise=self.sigma,
            options=reported_options(self.options),
            coverage=Coverage(evaluations={"setup": setup, "coordinates": nfev - setup}),
        )

    # -- noise and non-determinism -------------------------------------------------------------

    def _gradient_spread(self, grad: Callable[[Any], Any]) -> np.ndarray:
        again, _ = _analytic_gradient(grad, self.user_params)
        spread = np.abs(np.subtract(again, self.analytic, out=again), out=again)  # `again` is ours: in place
        if not np.any(spread):
            # A read-only zero of the right length, holding no memory: the vector of millions
            # just made is freed for the vectors the check makes next.
            return np.broadcast_to(np.float64(0.0), spread.shape)
        self.notes.append(
            f"`grad` is non-deterministic: two identical calls differ by up to {spread.max():.2e}; "
            "that spread is added to the error bars."
        )
        return spread

    def _gradient_rounding(self, grad: Callable[[Any], Any]) -> np.ndarray | None:
        """With the loss evaluated in float64 (`shadow`), the rounding of the gradient under test
        (None without `shadow`).

        The numerical side then measures the exact gradient, while `grad` rounds in the
        parameters' own precision, by more than a fixed number of ulps after a deep backward pass.
        The same `grad` called in float64 measures that rounding, which is added to the error
        bars (a wrong formula is just as wrong in float64, so no error hides
        in it). A `grad` that fails in float64 is left at the fixed floor.
        """
        if all(leaf.dtype == user.dtype for leaf, user in zip(self.params.leaves, self.user_params.leaves)):
            return None
        try:
            precise, _ = _analytic_gradient(grad, self.params)
        except GradprobeError:
            return None
        with np.errstate(invalid="ignore", over="ignore"):
            rounding = np.abs(precise - self.analytic)
        # Measured, not estimated: it enters the error bars once (spread is scaled by CONFIDENCE).
        return np.where(np.isfinite(rounding), rounding, 0.0) / fd.CONFIDENCE

    def _noise(self, f0: float, tables: int | None = None, points: int = POINTS, repeats: int = 2) -> float:
        """The loss's noise: ECnoise along random directions, or the spread of repeated calls."""
        if tables is None:
            tables = 2 * NOISE_TABLES if self.params.size <= FEW_PARAMETERS else NOISE_TABLES
        repeated = self.objective.evaluate([(np.array([], dtype=int), np.array([]))] * repeats)
        repeat_spread = float(np.max(np.abs(repeated - f0)))
        eps = max(float(np.finfo(leaf.dtype).eps) for leaf in self.params.leaves)
        all_double = all(leaf.dtype == np.float64 for leaf in self.params.leaves)
        indices = np.arange(self.params.size) if not all_double else None
        everything = slice(0, self.params.size)

        def line(k: int) -> Callable[[np.ndarray], np.ndarray]:
            # Random signs and lengths: points on a regular grid can round in a regular pattern,
            # which hides the noise from a difference table. Lengths uniform on [0.5, 1.5), signs
            # at random, both from one uniform draw u: 2u - 1, pushed 0.5 away from zero. Drawn
            # into the check's work vectors: this runs over every parameter of a model of
            # millions, where fresh vectors cost page faults.
            direction, push = (v[: self.params.size] for v in self.objective.work(2 * k + 2, self.params.size)[2 * k :])
            self.rng.random(out=direction)
            direction *= 2.0
            direction -= 1.0
            direction += np.copysign(0.5, direction, out=push)
            direction *= fd.element_scales(self.params)

            def evaluate(offsets: np.ndarray) -> np.ndarray:
                if all_double:
                    # The points are on the table's grid already: nothing to round, nothing to shift.
                    return self.objective.evaluate(LinePoints(self.params.values, [(everything, direction, offsets)]))
                intended = [self.params.values + o * direction for o in offsets]
                moved = [round_at(self.params, indices, p) for p in intended]
                values = self.objective.evaluate([(indices, m) for m in moved])
                # Low-precision parameters round the table's points off its grid; the analytic
                # gradient's linear model moves each value back to its grid point, so that the
                # rounding of the points is not mistaken for noise of the loss.
                with np.errstate(invalid="ignore", over="ignore"):
                    shift = np.array([self.analytic @ (m - p) for m, p in zip(moved, intended)])
                return values - np.where(np.isfinite(shift), shift, 0.0)

            return evaluate

        # Narrow tables: noise does not depend on the spacing, but a wide table moving every
        # parameter of a relu network crosses kinks, which inflate the estimate.
        spacing = max(eps**0.7, SPACING_ULPS * eps * SPACING_RATIO)
        # Rounding the result alone costs half an ulp (a whole one for a subnormal result).
        floor = max(0.5 * eps * abs(f0), float(np.spacing(abs(f0))))
        estimate = estimate_noise([line(k) for k in range(tables)], f0, spacing, floor=floor, points=points)
        sigma = max(estimate.sigma, repeat_spread)
        self.sigma = sigma
        if repeat_spread > 0:
            self.notes.append(
                f"`loss` is non-deterministic: identical calls differ by up to {repeat_spread:.2e} "
                f"(noise {sigma:.2e} in all); that noise is folded into the error bars."
            )
        self.ragged = estimate.ragged
        if estimate.ragged:
            self.notes.append(
                "the loss jumps about like noise at every spacing tried, down to a few ulps of the parameters: "
                "it has no derivative to compare at this precision (use float64 or smaller parameters)."
            )
        elif not estimate.reliable:
            self.notes.append("the loss's noise level could not be measured reliably; assumed rounding only.")
        return sigma

    # -- estimation and judgement ----------------------------------------------------------------

    def _probe(
        self, f0: float, sigma: float, indices: np.ndarray, steps: np.ndarray, spread: np.ndarray
    ) -> tuple[fd.Estimates, np.ndarray]:
        """Coordinate probes of `indices`, each descending its step ladder from ``steps[i]``.

        Returns the estimates (error bars widened by the analytic gradient's own `spread`) and the
        judgement codes, both in the order of `indices`.
        """

        def evaluate_level(which: np.ndarray, level: int):
            chosen = indices[which]
            current = np.zeros(self.params.size)
            current[chosen] = ladder.steps[which]  # a flat probe may have been given larger steps
            points, displacement = coordinate_points(self.params, chosen, current, fd.level_offsets(level))
            values = self.objective.evaluate(points).reshape(len(chosen), 2)
            return values, self.analytic[chosen, None] * displacement, displacement

        def widen(estimates: fd.Estimates, which: np.ndarray) -> fd.Estimates:
            # Along a coordinate the analytic derivative is the element itself (its product with a
            # tiny displacement may have underflowed on the way).
            chosen = indices[which]
            return replace(
                estimates, analytic=self.analytic[chosen], error=estimates.error + fd.CONFIDENCE * spread[chosen]
            )

        # Each level halves the step; stop before the points come within a few ulps of each other.
        with np.errstate(over="ignore", divide="ignore"):
            ratio = np.clip(steps[indices] / min_steps(self.params)[indices], 1.0, 2.0**fd.MAX_LEVELS)
        deepest = np.clip(np.floor(np.log2(ratio)).astype(int) + 1, 2, fd.MAX_LEVELS)
        ladder = Ladder(
            evaluate_level, self.options.method, f0, steps[indices], sigma,  # type: ignore[arg-type]
            deepest=deepest, adjust=widen, rounding=0.5 * max(float(np.finfo(leaf.dtype).eps) for leaf in self.params.leaves),
        )  # fmt: skip
        # Three levels everywhere first: their fourth-order combinations measure the loss's noise
        # where the probes are (rounding can be larger there than in the small noise tables), and
        # the descent then goes on with that.
        first = fd.window_levels(self.options.method)  # type: ignore[arg-type]
        ladder.descend(np.arange(len(indices)), until=first)
        # A loss that did not move at all (it moves in steps larger than the step's effect) is
        # probed again with larger steps until it does: the height of its steps is its noise.
        for _ in range(FLAT_RETRIES):
            flat = ladder.flat()
            flat = flat[self.analytic[indices[flat]] != 0]
            if not len(flat):
                break
            # ...but never so large that a half-precision parameter overflows.
            limit = np.array([np.finfo(self.params.leaf_of(int(i)).dtype).max / 8 for i in indices[flat]])
            ladder.restart(flat, np.minimum(ladder.steps[flat] * FLAT_GROWTH, limit))
            ladder.descend(flat, until=first)
        assert ladder.estimates is not None
        self._probe_noise(ladder)
        ladder.descend(ladder.undecided())
        self._below_kinks(ladder, indices)
        estimates, levels = ladder.estimates, ladder.levels
        assert estimates is not None
        estimates = self._check_noise(estimates, ladder.sigma, estimates.settled | (levels >= deepest) & ~estimates.is_rough)
        codes, _ = self._judge(estimates, indices=indices)
        return estimates, codes

    def _below_kinks(self, ladder: Ladder, indices: np.ndarray) -> None:
        """In a tensor where kinks were seen, take every element's estimate below the kinks' scale.

        A relu layer's weight moves every sample's pre-activation: its loss is smooth only between
        kinks that can lie closer together than the step. One kink inside the step shows as a
        jump; several small ones can hide (their jump estimates cancel) while still biasing the
        derivative. So when enough elements of a tensor saw kinks, every element descends to the
        level at which half of those were clear of them.
        """
        for leaf in self.params.leaves:
            mine = np.flatnonzero((indices >= leaf.offset) & (indices < leaf.offset + leaf.size))
            kinked = ladder.kinked[mine]
            if kinked.sum() < max(2, KINKED_FRACTION * len(mine)):
                continue
            cleared = ladder.cleared[mine][kinked & (ladder.cleared[mine] > 0)]
            if not len(cleared):
                continue
            target = int(np.ceil(np.median(cleared)))
            shallow = mine[ladder.levels[mine] < target]
            if len(shallow):
                ladder.descend(shallow, at_least=target)

    def _probe_noise(self, ladder: Ladder) -> None:
        """Raise the noise level to what the first windows of all probes show, if that is more.

        The probes whose first window is dominated by round-off contribute their fourth-order
        combinations (noise plus a small smooth part); the median is robust to the few that still
        carry curvature or a kink.
        """
        estimates = ladder.estimates
        if estimates is None or estimates.noise_samples is None:
            return
        # Only probes whose window is round-off dominated (strong curvature would swamp their
        # combinations): a loose cut, so that the noise is not selected for being small.
        with np.errstate(over="ignore"):  # an infinite bar (subnormal steps) is not quiet, just unresolved
            quiet = estimates.truncation <= 2 * estimates.roundoff
        if estimates.significance is not None:
            quiet &= estimates.significance <= 3  # not a clear kink (a loose cut again: 4.5 sigma)
        measured = (
            noise_from_samples(estimates.noise_samples[quiet]) if quiet.sum() >= PROBE_NOISE_MINIMUM else 0.0
        )
        measured = max(measured, self._staircase(ladder))
        if measured > ladder.sigma:
            self.notes.append(
                f"the probes show more noise ({measured:.2e}) than the loss's difference tables ({ladder.sigma:.2e}); "
                "the error bars use the larger."
            )
            self.sigma = measured
            ladder.assume_noise(measured)

    def _staircase(self, ladder: Ladder) -> float:
        """Half the height of the loss's steps, if the probes saw a staircase; else 0.

        A loss that cancels to a few ulps of a larger intermediate (``log(1 + y)`` for tiny
        ``y``) is flat between steps of one such ulp: some probe values equal the loss at the
        point exactly, and every change is a whole multiple of one power of two. Its noise is the
        height of a step, whatever the smooth-looking noise tables said.
        """
        changes = (ladder.values - ladder.f0)[:, : 2 * fd.window_levels(self.options.method)]  # type: ignore[arg-type]
        changes = changes[np.all(np.isfinite(changes), axis=1)]
        mixed = np.any(changes == 0, axis=1) & np.any(changes != 0, axis=1)
        if not np.any(mixed):
            return 0.0
        sizes = np.abs(changes[mixed])
        sizes = sizes[sizes > 0]
        quantum = float(np.min(sizes))
        power = np.log2(quantum)
        multiples = sizes / quantum
        # Whole multiples of a power of two, up to the last bits the final rounding may change.
        exact = 1e-9 * np.maximum(multiples, 1.0)
        if abs(power - np.round(power)) <= 1e-9 and np.all(np.abs(multiples - np.round(multiples)) <= exact):
            return quantum / 2
        return 0.0

    def _check_noise(self, estimates: fd.Estimates, sigma: float, usable: np.ndarray) -> fd.Estimates:
        """Widen the error bars if the probes themselves show more noise than was measured.

        A difference table can miss rounding noise that repeats along its grid (a loss of one or
        two parameters, say); the finest windows of the probes measure it where it matters.
        """
        if estimates.noise_samples is None or sigma <= 0:
            return estimates
        measured = noise_from_samples(estimates.noise_samples[usable])
        if not measured > sigma:
            return estimates
        self.notes.append(
            f"the probes show more noise ({measured:.2e}) than the loss's difference table ({sigma:.2e}); "
            "the error bars use the larger."
        )
        self.sigma = measured
        return fd.rescale_noise(estimates, measured)

    def _finite_differences(self, f0: float, sigma: float, spread: np.ndarray) -> _Elements:
        steps = fd.choose_steps(self.params, sigma, self.analytic, self.options.method)  # type: ignore[arg-type]
        everything = np.arange(self.params.size)
        estimates, _ = self._probe(f0, sigma, everything, steps, spread)
        codes, floor = self._judge(estimates)
        return _Elements(estimates, codes, floor)

    def _tensor_scales(self, estimates: fd.Estimates | None) -> np.ndarray:
        """Typical gradient size per element's tensor (the unit for 'resolved'); from the analytic
        gradient alone while the numerical one is not known yet."""
        numeric_all = self.analytic if estimates is None else estimates.numeric
        overall = fd.rms(numeric_all) if np.all(np.isfinite(numeric_all)) else 0.0
        scale = np.empty(self.params.size)
        for leaf in self.params.leaves:
            numeric = numeric_all[leaf.slice]
            numeric = numeric[np.isfinite(numeric)]
            candidates = [fd.rms(self.analytic[leaf.slice])]
            if numeric.size:
                candidates.append(fd.rms(numeric))
            scale[leaf.slice] = max(candidates) or overall or 1.0
        return scale

    @staticmethod
    def _overall_scale(estimates: fd.Estimates) -> float:
        """The RMS of the whole numerical gradient (its finite elements)."""
        numeric = estimates.numeric[np.isfinite(estimates.numeric)]
        return fd.rms(numeric) if numeric.size else 0.0

    def _flat_leaves(self, estimates: fd.Estimates) -> list:
        """The tensors whose numerical gradient is zero within its error bars, while the gradient
        as a whole is not. The numerical side alone decides (a gradient that is merely small
        next to the others', measured clear of zero, keeps its own scale)."""
        overall = self._overall_scale(estimates)
        flat = []
        if not overall > 0:
            return flat
        with np.errstate(invalid="ignore", over="ignore"):
            zero = np.abs(estimates.numeric) <= estimates.error
        for leaf in self.params.leaves:
            seen = np.isfinite(estimates.numeric[leaf.slice])
            if np.any(seen) and np.all(zero[leaf.slice][seen]) and fd.rms(estimates.numeric[leaf.slice][seen]) < overall:
                flat.append(leaf)
        return flat

    def _judge(self, estimates: fd.Estimates, indices: np.ndarray | None = None, scale_from: fd.Estimates | None = None):
        """Codes and analytic floors for the probes of `indices` (all coordinates by default).

        The unit for "resolved" is each tensor's RMS gradient; the analytic side's own rounding is
        measured against its median size, so that one huge element does not excuse the others.
        """
        if indices is None:
            indices = np.arange(self.params.size)
        if scale_from is None and len(estimates.numeric) == self.params.size:
            scale_from = estimates
        scale = self._tensor_scales(scale_from)
        typical = np.empty(self.params.size)
        for leaf in self.params.leaves:
            analytic = self.analytic[leaf.slice]
            if scale_from is not None:
                # Elements whose numerical side failed (NaN near the point) do not set the scale.
                numeric = scale_from.numeric[leaf.slice]
                seen = np.isfinite(numeric)
                analytic = analytic[seen] if np.any(seen) else analytic
                sizes = [float(np.median(np.abs(numeric[seen])))] if np.any(seen) else []
            else:
                sizes = []
            typical[leaf.slice] = max([float(np.median(np.abs(analytic))), *sizes])
        if len(estimates.numeric) == self.params.size:
            # A tensor the loss does not depend on (a bias before batch norm) has nothing of its own
            # to measure against: its zeros are resolved, and its analytic rounding excused, on the
            # scale of the whole gradient (known only once every element has been probed).
            overall = self._overall_scale(estimates)
            for leaf in self._flat_leaves(estimates):
                scale[leaf.slice] = np.maximum(scale[leaf.slice], overall)
                typical[leaf.slice] = max(typical[leaf.offset], overall)
        floor = analytic_floor(self.analytic[indices], typical[indices], self.eps[indices], self.options.rtol)
        judgement = judge(estimates, scale[indices], floor)
        if getattr(self, "ragged", False):
            # Nothing the finite differences say can be trusted: every element is unresolved.
            return np.where(judgement.codes == NONFINITE, NONFINITE, NOISE).astype(np.int8), floor
        return judgement.codes, floor

    def _undetectable(self, estimates: fd.Estimates, codes: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """`undetectable`, except that on a ragged loss (no derivative at this precision) anything can hide."""
        if getattr(self, "ragged", False):
            return np.full(len(codes), np.inf)
        return undetectable(estimates, codes, floor)

    def _exact(self, spread: np.ndarray) -> _Elements:
        estimates = exact_estimates(self.oracle, self.user_params, self.analytic, spread)  # type: ignore[arg-type]
        codes, floor = self._judge(estimates)
        return _Elements(estimates, codes, floor)

    def _complex(self, f0: float) -> _Elements:
        steps = COMPLEX_STEP * fd.element_scales(self.params)
        self._require_complex_support(f0, steps)
        indices = np.arange(self.params.size)
        points = [(np.array([i]), np.array([self.params.values[i] + 1j * steps[i]])) for i in indices]
        values = self.objective.evaluate(points, dtype=np.complex128)
        estimates = fd.complex_step(values, steps, self.analytic)
        codes, floor = self._judge(estimates)
        return _Elements(estimates, codes, floor)

    def _require_complex_support(self, f0: float, steps: np.ndarray) -> None:
        """Complex step is exact only if the loss is complex-analytic; abs, max, np.real break it."""
        v = self.rng.standard_normal(self.params.size)
        indices = np.arange(self.params.size)
        try:
            z = self.objective.evaluate([(indices, self.params.values + 1j * steps * v)], dtype=np.complex128)[0]
        except (UserFunctionError, InvalidArgument) as error:
            raise InvalidArgument(
                f"`method`='complex' needs a loss that accepts complex parameters, but `loss` failed on them "
                f"({error}); use method='richardson'.",
                argument="method",
            ) from error
        h = 1e-6 * fd.element_scales(self.params) * v
        # In float64 like the complex evaluation, so float32 rounding of x +- h cannot spoil the comparison.
        plus, minus = self.objective.evaluate(
            [(indices, self.params.values + h), (indices, self.params.values - h)], dtype=np.float64
        )
        central = (plus - minus) / 2e-6
        derivative = z.imag / COMPLEX_STEP
        if z.imag == 0 or abs(derivative - central) > 1e-4 * (abs(central) + abs(derivative)) + 1e-8 * abs(f0):
            raise InvalidArgument(
                "`method`='complex' needs a complex-analytic loss, but this one drops or mangles the imaginary part "
                "(abs, max, np.real, comparisons or conjugation do that); use method='richardson'.",
                argument="method",
            )

    # -- report ------------------------------------------------------------------------------------

    def _tensor_reports(self, f0: float, elements: _Elements) -> dict[str, TensorReport]:
        e = elements.estimates
        reports = {}
        flat = {leaf.name for leaf in self._flat_leaves(e)}
        for leaf in self.user_params.leaves:
            part = leaf.slice
            codes = elements.codes[part]
            a, n, err, floor = self.analytic[part], e.numeric[part], e.error[part], elements.floor[part]
            bound = self._undetectable(e.take(part), codes, floor)
            tensor_resolution = resolution(bound, n, safe_norm(a))
            # A tensor whose gradient is tiny next to the others' is judged against the gradient's
            # typical size: missing 10% of almost nothing does not make it inconclusive.
            typical = fd.rms(e.numeric) if np.all(np.isfinite(e.numeric)) else fd.rms(self.analytic)
            judged = resolution(bound, n, safe_norm(a)) if typical == 0 else min(
                tensor_resolution, resolution(bound, np.full(leaf.size, typical), 0.0)
            )
            if leaf.name in flat:
                # Zero within its error bars: its resolution means something only on the whole gradient's scale.
                tensor_resolution = judged
            kink_free = self._undetectable(replace(e.take(part), jump=None), codes, floor)
            kink_free_judged = min(resolution(kink_free, n, safe_norm(a)), resolution(kink_free, np.full(leaf.size, typical or 1.0), 0.0))
            status, reason = tensor_status(
                codes, judged, zero=not (np.any(a) or np.any(n) or typical), kink_free=kink_free_judged
            )
            gap = np.where(np.isfinite(n), np.abs(a - n), np.inf)
            order = np.argsort(-gap, kind="stable")[:WORST_KEPT]
            worst = tuple(Element(leaf.index(leaf.offset + int(i)), float(a[i]), float(n[i])) for i in order)
            kinks = tuple(leaf.index(leaf.offset + int(i)) for i in np.flatnonzero(codes == KINK))
            diagnosis = slope = None
            if status != "pass":
                at_kink = None if e.at_point is None else (e.is_rough & e.at_point)[part]
                diagnosis = diagnose(
                    leaf.name, leaf.shape, a, n, err, floor, codes, self.options.batch_size, at_kink, reason=reason,
                    tensor_resolution=tensor_resolution, ragged=getattr(self, "ragged", False),
                )  # fmt: skip
            if status == "fail":
                slope = self._taylor_slope(f0, leaf, a - n)
            reports[leaf.name] = TensorReport(
                name=leaf.name,
                shape=leaf.shape,
                status=status,  # type: ignore[arg-type]
                difference=relative_difference(a, n),
                resolution=tensor_resolution,
                scale=diagnosis.scale if diagnosis else None,
                diagnosis=diagnosis.summary if diagnosis else None,
                hint=diagnosis.hint if diagnosis else None,
                worst=worst if status != "pass" else worst[:1],
                reason=reason,
                kinks=kinks,
                counts={s: int(np.sum(codes == k)) for k, s in enumerate(ELEMENT_STATUSES)},
                taylor_slope=slope,
                analytic=a.reshape(leaf.shape),
                numeric=n.reshape(leaf.shape),
                error_bar=(err + floor).reshape(leaf.shape),
            )
        return reports

    def _taylor_slope(
        self, f0: float, leaf, error_direction: np.ndarray, indices: np.ndarray | None = None
    ) -> float | None:
        """Slope of log|L(x + t v) - L(x) - g.(t v)| against log t, along the error's direction.

        The remainder shrinks like t**2 when `g` is right along `v` and like t when it is wrong,
        once t is small enough for the error's linear term to beat the curvature. So the steps
        span a wide range (`TAYLOR_STEPS`, each a quarter of the last) and the slope is read off
        the three smallest whose remainder still stands clear of the loss's noise.
        `error_direction` is over the tensor's elements, or over the flat positions `indices`
        (the few known wrong elements of a large tensor: the same points, without moving millions).
        """
        size = np.max(np.abs(error_direction))
        if not np.isfinite(size) or size == 0:
            return None
        if indices is None:
            indices = np.arange(leaf.offset, leaf.offset + leaf.size)
        scales = fd.element_scales(self.params)[indices]
        v = error_direction / size * scales * TAYLOR_MOVE
        x = self.params.values[indices]
        moved = [round_at(self.params, indices, x + t * v) for t in 4.0 ** -np.arange(TAYLOR_STEPS)]
        values = self.objective.evaluate([(indices, m) for m in moved])
        with np.errstate(invalid="ignore", over="ignore"):
            predicted = np.array([self.analytic[indices] @ (m - x) for m in moved])
            remainders = np.abs(values - f0 - predicted)
            lengths = np.array([np.linalg.norm(m - x) for m in moved])
            # Noise of the two loss values and rounding of the prediction.
            floor = fd.CONFIDENCE * (np.sqrt(2) * self.sigma + 16 * self.eps[indices].max() * np.abs(predicted))
            usable = np.flatnonzero(np.isfinite(remainders) & (remainders > floor) & (lengths > 0))
        if len(usable) < 3:
            return None
        smallest = usable[-3:]
        return float(np.polyfit(np.log(lengths[smallest]), np.log(remainders[smallest]), 1)[0])
