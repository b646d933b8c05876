"""`budget=`: how much work a check may do, counted in loss evaluations or in seconds.

An evaluation budget keeps the check deterministic (the same seed and budget give the same
report); a time budget cannot, since how far the check gets depends on the machine.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .._errors import InvalidArgument, InvalidValue

_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|min|m|h)\s*$")


@dataclass(frozen=True)
class Budget:
    """A cap on loss evaluations or on wall time; both None means no cap.

    Examples
    --------
    >>> parse_budget(500).evaluations, parse_budget("2min").seconds
    (500, 120.0)
    >>> str(parse_budget("30s"))
    '30 s'
    """

    evaluations: int | None = None
    seconds: float | None = None
    given: Any = None  # as the user wrote it, for `Report.options`
    started: float = field(default_factory=time.monotonic, compare=False)

    @property
    def bounded(self) -> bool:
        return self.evaluations is not None or self.seconds is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def affords(self, nfev: int, cost: int) -> bool:
        """Whether `cost` more evaluations fit, after `nfev` spent."""
        if self.evaluations is not None and nfev + cost > self.evaluations:
            return False
        return self.seconds is None or self.elapsed() < self.seconds

    def remaining(self, nfev: int) -> int | None:
        """Evaluations left (None when only time, or nothing, bounds the check)."""
        return None if self.evaluations is None else max(0, self.evaluations - nfev)

    def share(self, parts: int) -> Budget:
        """Each point's share under ``points=parts``, its clock starting now: an equal part of the
        evaluations left after the one each nearby point spends first (is the loss defined there?),
        and of the time.

        Examples
        --------
        >>> parse_budget(300).share(3).evaluations, parse_budget("30s").share(3).seconds
        (99, 10.0)
        """
        return Budget(
            evaluations=None if self.evaluations is None else (self.evaluations - (parts - 1)) // parts,
            seconds=None if self.seconds is None else self.seconds / parts,
            given=self.given,
        )

    def __str__(self) -> str:
        if self.evaluations is not None:
            return f"{self.evaluations} evaluations"
        if self.seconds is not None:
            return f"{self.seconds:g} s"
        return "unbounded"


def parse_budget(value: Any) -> Budget:
    """Read ``budget=``: an int (loss evaluations), a duration string ("30s", "5min", "1h") or a
    `datetime.timedelta`; None for no budget."""
    if value is None:
        return Budget()
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise InvalidArgument(
                f"`budget` string {value!r} is not a duration; write e.g. '30s', '500ms', '5min' or '1h' "
                "(or pass an int number of loss evaluations).",
                argument="budget",
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            # The minimum a check needs depends on its parameters and strategy: `_cost.require_affordable`.
            raise InvalidValue(f"`budget` of {value} evaluations is too small: give a positive number.", argument="budget")
        return Budget(evaluations=value, given=value)
    else:
        raise InvalidArgument(
            f"`budget` must be an int number of loss evaluations (e.g. 2000), a duration such as '30s' or "
            f"'5min', or a datetime.timedelta; got {value!r}.",
            argument="budget",
        )
    if not seconds > 0:
        raise InvalidValue(f"`budget` must be a positive duration, got {value!r}.", argument="budget")
    return Budget(seconds=seconds, given=value)
