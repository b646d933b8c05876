"""`check`: the pipeline Params -> Plan -> Estimator -> Judge -> Report for a scalar loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _differences as fd
from ._diagnosis import diagnose
from ._errors import InvalidArgument, UserFunctionError
from ._matching import flatten_gradient
from ._noise import estimate_noise
from ._objective import Objective, require_callable
from ._options import Options, validate_options
from ._params import Params
from ._probes import coordinate_points, round_at
from ._report import Element, Report, TensorReport
from ._verdict import (
    ELEMENT_STATUSES,
    FAIL,
    KINK,
    PASS,
    analytic_floor,
    combine_levels,
    judge,
    overall_status,
    relative_difference,
    resolution,
    tensor_status,
)

WORST_KEPT = 5
# When the first probe of an element is not a clean pass, probe it again with a step this much
# smaller (truncation dominated: a kink or strong curvature inside the step) or larger (noise).
REFINE_SMALLER, REFINE_LARGER = 1 / 16, 8.0
COMPLEX_STEP = 1e-20


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
    shadow: bool = False,
    batch_size: int | None = None,
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
    strategy : {"auto", "full"}
        "full" probes every coordinate; "auto" currently does the same.
    method : {"auto", "richardson", "central", "complex"}
        Finite-difference estimate. "auto" is "richardson"; "complex" needs a loss that accepts
        complex parameters and is exact to rounding.
    rtol : float, optional
        Relative disagreement to accept on top of the error bars (e.g. for an approximate
        gradient). By default only the error bars decide.
    seed : int
        Seed for the random directions; the same seed gives the same report.
    shadow : bool
        Evaluate the loss in float64 even for lower-precision parameters, to separate a wrong
        formula from precision loss.
    batch_size : int, optional
        The batch size m, so that a factor of m or 1/m is named as such in the diagnosis.

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
        strategy=strategy, method=method, rtol=rtol, seed=seed, shadow=shadow, batch_size=batch_size
    )
    require_callable(loss, "loss")
    require_callable(grad, "grad")
    user_params = Params(params)
    analytic, ignored = _analytic_gradient(grad, user_params)
    probed = Params(user_params.build(user_params.values, dtype=np.float64)) if options.shadow else user_params
    return _Checker(Objective(loss, probed), user_params, analytic, options).run(grad, ignored)


def _analytic_gradient(grad: Callable[[Any], Any], params: Params) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        tree = grad(params.copy())
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as error:
        raise UserFunctionError(f"`grad` raised {type(error).__name__}: {error}", argument="grad") from error
    return flatten_gradient(params, tree, argument="grad")


class _Checker:
    """One run of the pipeline; holds what the stages share."""

    def __init__(self, objective: Objective, user_params: Params, analytic: np.ndarray, options: Options) -> None:
        self.objective = objective
        self.params = objective.params
        self.user_params = user_params
        self.analytic = analytic
        self.options = options
        self.rng = np.random.default_rng(options.seed)
        self.notes: list[str] = []
        # Rounding of the analytic gradient: the parameters' own precision.
        self.eps = np.empty(user_params.size)
        for leaf in user_params.leaves:
            self.eps[leaf.slice] = np.finfo(leaf.dtype).eps

    def run(self, grad: Callable[[Any], Any], ignored: tuple[str, ...]) -> Report:
        f0 = self.objective.initial()
        spread = self._gradient_spread(grad)
        sigma = self._noise(f0)
        if self.options.method == "complex":
            elements = self._complex(f0)
        else:
            elements = self._finite_differences(f0, sigma, spread)
        tensors = self._tensor_reports(f0, elements)
        e = elements.estimates
        return Report(
            status=overall_status([t.status for t in tensors.values()]),  # type: ignore[arg-type]
            difference=relative_difference(self.analytic, e.numeric),
            resolution=resolution(e.error, elements.floor, e.numeric, float(np.linalg.norm(self.analytic))),
            nfev=self.objective.nfev,
            tensors=tensors,
            ignored=ignored,
            notes=tuple(self.notes),
            method=self.options.method,
            strategy="full",
            seed=self.options.seed,
            noise=sigma,
        )

    # -- noise and non-determinism -------------------------------------------------------------

    def _gradient_spread(self, grad: Callable[[Any], Any]) -> np.ndarray:
        again, _ = _analytic_gradient(grad, self.user_params)
        spread = np.abs(again - self.analytic)
        if np.any(spread):
            self.notes.append(
                f"`grad` is non-deterministic: two identical calls differ by up to {spread.max():.2e}; "
                "that spread is added to the error bars."
            )
        return spread

    def _noise(self, f0: float) -> float:
        repeats = self.objective.evaluate([(np.array([], dtype=int), np.array([]))] * 2)
        repeat_spread = float(np.max(np.abs(repeats - f0)))
        eps = max(float(np.finfo(leaf.dtype).eps) for leaf in self.params.leaves)
        direction = self.rng.choice([-1.0, 1.0], self.params.size) * fd.element_scales(self.params)
        indices = np.arange(self.params.size)

        def line(offsets: np.ndarray) -> np.ndarray:
            points = [(indices, round_at(self.params, indices, self.params.values + o * direction)) for o in offsets]
            return self.objective.evaluate(points)

        estimate = estimate_noise(line, f0, eps**0.4, floor=0.5 * eps * abs(f0))
        sigma = max(estimate.sigma, repeat_spread)
        if repeat_spread > 0:
            self.notes.append(
                f"`loss` is non-deterministic: identical calls differ by up to {repeat_spread:.2e}; "
                "its noise is folded into the error bars."
            )
        if not estimate.reliable:
            self.notes.append("the loss's noise level could not be measured reliably; assumed rounding only.")
        return sigma

    # -- estimation and judgement ----------------------------------------------------------------

    def _probe(self, f0: float, sigma: float, indices: np.ndarray, steps: np.ndarray, spread: np.ndarray):
        points, displacement = coordinate_points(self.params, indices, steps)
        values = self.objective.evaluate(points).reshape(len(indices), len(fd.OFFSETS))
        predicted = self.analytic[indices, None] * displacement
        estimates = fd.finite_differences(
            self.options.method, f0, values, predicted, displacement, steps[indices], sigma  # type: ignore[arg-type]
        )
        if np.any(spread[indices]):
            estimates = replace(estimates, error=estimates.error + fd.CONFIDENCE * spread[indices])
        return estimates

    def _finite_differences(self, f0: float, sigma: float, spread: np.ndarray) -> _Elements:
        steps = fd.choose_steps(self.params, sigma, f0, self.analytic)
        everything = np.arange(self.params.size)
        first = self._probe(f0, sigma, everything, steps, spread)
        first_codes, floor = self._judge(first)
        again = np.flatnonzero(first_codes != PASS)
        if not len(again):
            return _Elements(first, first_codes, floor)
        truncation_bound = first.truncation[again] > first.roundoff[again]
        finer = steps.copy()
        finer[again] = steps[again] * np.where(truncation_bound, REFINE_SMALLER, REFINE_LARGER)
        second = self._probe(f0, sigma, again, finer, spread)
        second_codes, _ = self._judge(second, indices=again, scale_from=first)
        final = combine_levels(first_codes[again], second_codes)
        from_second = final == second_codes
        merged = {}
        for name in ("numeric", "analytic", "error", "truncation", "roundoff", "right", "left"):
            column = np.array(getattr(first, name), dtype=float)
            column[again[from_second]] = getattr(second, name)[from_second]
            merged[name] = column
        codes = first_codes.copy()
        codes[again] = final
        return _Elements(fd.Estimates(**merged), codes, floor)

    def _tensor_scales(self, estimates: fd.Estimates) -> np.ndarray:
        """Typical gradient size per element's tensor (the unit for 'resolved')."""
        overall = float(np.sqrt(np.mean(estimates.numeric**2))) if np.all(np.isfinite(estimates.numeric)) else 0.0
        scale = np.empty(self.params.size)
        for leaf in self.params.leaves:
            numeric = estimates.numeric[leaf.slice]
            numeric = numeric[np.isfinite(numeric)]
            candidates = [np.sqrt(np.mean(self.analytic[leaf.slice] ** 2))]
            if numeric.size:
                candidates.append(np.sqrt(np.mean(numeric**2)))
            scale[leaf.slice] = max(candidates) or overall or 1.0
        return scale

    def _judge(self, estimates: fd.Estimates, indices: np.ndarray | None = None, scale_from: fd.Estimates | None = None):
        scale = self._tensor_scales(scale_from if scale_from is not None else estimates)
        if indices is None:
            indices = np.arange(self.params.size)
        floor = analytic_floor(self.analytic[indices], scale[indices], self.eps[indices], self.options.rtol)
        judgement = judge(estimates, scale[indices], floor)
        return judgement.codes, floor

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
                f"method='complex' needs a loss that accepts complex parameters, but `loss` failed on them "
                f"({error}); use method='richardson'.",
                argument="method",
            ) from error
        h = 1e-6 * fd.element_scales(self.params) * v
        plus, minus = self.objective.evaluate([(indices, self.params.values + h), (indices, self.params.values - h)])
        central = (plus - minus) / 2e-6
        derivative = z.imag / 1.0
        if z.imag == 0 or abs(derivative - central) > 1e-4 * (abs(central) + abs(derivative)) + 1e-8 * abs(f0):
            raise InvalidArgument(
                "method='complex' needs a complex-analytic loss, but this one drops or mangles the imaginary part "
                "(abs, max, np.real, comparisons or conjugation do that); use method='richardson'.",
                argument="method",
            )

    # -- report ------------------------------------------------------------------------------------

    def _tensor_reports(self, f0: float, elements: _Elements) -> dict[str, TensorReport]:
        e = elements.estimates
        reports = {}
        for leaf in self.user_params.leaves:
            part = leaf.slice
            codes = elements.codes[part]
            a, n, err, floor = self.analytic[part], e.numeric[part], e.error[part], elements.floor[part]
            status, reason = tensor_status(codes)
            gap = np.where(np.isfinite(n), np.abs(a - n), np.inf)
            order = np.argsort(-gap, kind="stable")[:WORST_KEPT]
            worst = tuple(Element(leaf.index(leaf.offset + int(i)), float(a[i]), float(n[i])) for i in order)
            kinks = tuple(leaf.index(leaf.offset + int(i)) for i in np.flatnonzero(codes == KINK))
            diagnosis = slope = None
            if status == "fail":
                diagnosis = diagnose(leaf.name, leaf.shape, a, n, err, floor, codes, self.options.batch_size)
                slope = self._taylor_slope(f0, leaf, a - n)
            reports[leaf.name] = TensorReport(
                name=leaf.name,
                shape=leaf.shape,
                status=status,  # type: ignore[arg-type]
                difference=relative_difference(a, n),
                resolution=resolution(err, floor, n, float(np.linalg.norm(a))),
                scale=diagnosis.scale if diagnosis else None,
                diagnosis=diagnosis.summary if diagnosis else None,
                hint=diagnosis.hint if diagnosis else None,
                worst=worst if status != "pass" else worst[:1],
                reason=reason,
                kinks=kinks,
                counts={s: int(np.sum(codes == k)) for k, s in enumerate(ELEMENT_STATUSES)},
                taylor_slope=slope,
            )
        return reports

    def _taylor_slope(self, f0: float, leaf, error_direction: np.ndarray) -> float | None:
        """Slope of log|L(x + t v) - L(x) - g.(t v)| against log t, along the error's direction."""
        size = np.max(np.abs(error_direction))
        if not np.isfinite(size) or size == 0:
            return None
        indices = np.arange(leaf.offset, leaf.offset + leaf.size)
        scales = fd.element_scales(self.params)[indices]
        v = error_direction / size * scales * 1e-2
        ts = 2.0 ** -np.arange(5)
        x = self.params.values[indices]
        moved = [round_at(self.params, indices, x + t * v) for t in ts]
        values = self.objective.evaluate([(indices, m) for m in moved])
        remainders = np.abs(values - f0 - np.array([self.analytic[indices] @ (m - x) for m in moved]))
        lengths = np.array([np.linalg.norm(m - x) for m in moved])
        usable = (remainders > 0) & np.isfinite(remainders)
        if usable.sum() < 3:
            return None
        return float(np.polyfit(np.log(lengths[usable]), np.log(remainders[usable]), 1)[0])
