"""Validation of the keyword options shared by every entry point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from ._budget import Budget, parse_budget
from ..estimate._differences import METHODS
from .._errors import InvalidArgument, InvalidValue

STRATEGIES = ("auto", "full", "directional", "sample")
#: `check`'s keyword options and their defaults, as a user writes them: `validate_options` takes its
#: defaults from here, and `check`'s signature states the same (a test pins it). An option still
#: equal to its default after validation is left out of `Report.options`, so that the reproduce
#: line names only what the user changed.
CHECK_DEFAULTS: dict[str, Any] = {
    "strategy": "auto",
    "method": "auto",
    "rtol": None,
    "seed": 0,
    "shadow": None,
    "batch_size": None,
    "budget": None,
    "executor": None,
    "vectorized": False,
    "progress": None,
    "confidence": 0.999,
    "probes": None,
    "points": 1,
}
#: How work is spread and shown, never what it finds: left out of `Report.options`.
NOT_REPORTED = ("method", "strategy", "seed", "executor", "progress")


@dataclass(frozen=True)
class Options:
    strategy: str
    method: str
    rtol: float
    seed: int
    shadow: bool | None  # None: on when a parameter's dtype cannot resolve a gradient (float16)
    batch_size: int | None
    budget: Budget
    executor: Any
    vectorized: bool
    progress: bool | None
    confidence: float
    probes: int | None
    points: int  # the user's point and points - 1 nearby ones (`_points`)


def reported_options(options: Options) -> dict[str, Any]:
    """The options that shape a report and differ from `check`'s defaults, as the user gave them
    (for `Report.options`, which `Report.reproduce` writes out as they are)."""
    defaults = _shaping(_validated_defaults())
    return {k: v for k, v in _shaping(options).items() if not _same(v, defaults[k])}


def _shaping(options: Options) -> dict[str, Any]:
    shaping = {k: v for k, v in vars(options).items() if k not in NOT_REPORTED}
    shaping["budget"] = options.budget.given
    return shaping


@cache
def _validated_defaults() -> Options:
    """`CHECK_DEFAULTS` as `validate_options` stores them (``rtol=None`` is 0.0 there)."""
    return validate_options(**CHECK_DEFAULTS)


def _same(value: Any, default: Any) -> bool:
    # Of the same type too: ``True`` is not the default ``1``, nor ``0`` a default ``False``.
    return value is default or (type(value) is type(default) and value == default)


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(
            f"`{name}` must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}.", argument=name
        )
    return value


def validate_options(
    *,
    strategy: Any = CHECK_DEFAULTS["strategy"],
    method: Any = CHECK_DEFAULTS["method"],
    rtol: Any = CHECK_DEFAULTS["rtol"],
    seed: Any = CHECK_DEFAULTS["seed"],
    shadow: Any = CHECK_DEFAULTS["shadow"],
    batch_size: Any = CHECK_DEFAULTS["batch_size"],
    budget: Any = CHECK_DEFAULTS["budget"],
    executor: Any = CHECK_DEFAULTS["executor"],
    vectorized: Any = CHECK_DEFAULTS["vectorized"],
    progress: Any = CHECK_DEFAULTS["progress"],
    confidence: Any = CHECK_DEFAULTS["confidence"],
    probes: Any = CHECK_DEFAULTS["probes"],
    points: Any = CHECK_DEFAULTS["points"],
) -> Options:
    strategy = _choice(strategy, "strategy", STRATEGIES)
    method = _choice(method, "method", ("auto", *METHODS))
    if rtol is None:
        rtol = 0.0
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
        raise InvalidValue(
            f"`rtol` must be a number in [0, 1) (relative error to accept), got {rtol!r}; leave it out to "
            "judge by the error bars alone.",
            argument="rtol",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgument(f"`seed` must be a non-negative int, got {seed!r}.", argument="seed")
    if shadow is not None and not isinstance(shadow, bool):
        raise InvalidArgument(
            f"`shadow` must be True, False or None (on for float16 parameters), got {shadow!r}.", argument="shadow"
        )
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidArgument(
            f"`batch_size` must be a positive int (the m in 1/m) or None, got {batch_size!r}.", argument="batch_size"
        )
    if not isinstance(vectorized, bool):
        raise InvalidArgument(f"`vectorized` must be True or False, got {vectorized!r}.", argument="vectorized")
    if progress is not None and not isinstance(progress, bool):
        raise InvalidArgument(
            f"`progress` must be True, False or None (on when writing to a terminal), got {progress!r}.",
            argument="progress",
        )
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise InvalidValue(
            f"`confidence` must be a probability in (0, 1), e.g. 0.999 or 1 - 1e-9, got {confidence!r}.",
            argument="confidence",
        )
    if probes is not None and (isinstance(probes, bool) or not isinstance(probes, int) or probes < 1):
        raise InvalidArgument(
            f"`probes` must be a positive int (random directions, or sampled elements, per tensor) or None "
            f"to choose from `confidence`, got {probes!r}.",
            argument="probes",
        )
    if probes is not None and strategy == "full":
        raise InvalidArgument(
            f"`probes` counts random directions or sampled elements per tensor, which strategy='full' does not use "
            f"(it probes every element); leave it out, or pick strategy='directional' or 'sample'. Got probes={probes!r}.",
            argument="probes",
        )
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise InvalidArgument(
            f"`points` must be a positive int: 1 checks at your point only, k also at k - 1 random points "
            f"near it (e.g. points=3); got {points!r}.",
            argument="points",
        )
    from ..estimate._executor import require_executor

    require_executor(executor)
    return Options(
        strategy,
        "richardson" if method == "auto" else method,
        float(rtol),
        seed,
        shadow,
        batch_size,
        budget=parse_budget(budget),
        executor=executor,
        vectorized=vectorized,
        progress=progress,
        confidence=float(confidence),
        probes=probes,
        points=points,
    )
