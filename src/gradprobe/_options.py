"""Validation of the keyword options shared by every entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._differences import METHODS
from ._errors import InvalidArgument, InvalidValue

STRATEGIES = ("auto", "full")


@dataclass(frozen=True)
class Options:
    strategy: str
    method: str
    rtol: float
    seed: int
    shadow: bool
    batch_size: int | None


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(
            f"`{name}` must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}.", argument=name
        )
    return value


def validate_options(
    *, strategy: Any, method: Any, rtol: Any, seed: Any, shadow: Any, batch_size: Any
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
    if not isinstance(shadow, bool):
        raise InvalidArgument(f"`shadow` must be True or False, got {shadow!r}.", argument="shadow")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidArgument(
            f"`batch_size` must be a positive int (the m in 1/m) or None, got {batch_size!r}.", argument="batch_size"
        )
    return Options(strategy, "richardson" if method == "auto" else method, float(rtol), seed, shadow, batch_size)
