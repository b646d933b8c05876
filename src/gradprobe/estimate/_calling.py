"""The one policy for calling a user's function (`loss`, `grad`, `vjp`, `f`...): what its
exceptions become. Serial, vectorized and executor evaluations all go through `call_user`, so the
same user error surfaces as the same exception, naming the same argument, whichever path ran it;
at a probe point, the loss is undefined there (`OutsideDomain`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._errors import GradprobeError, UserFunctionError


def call_user(function: Callable[..., Any], argument: str, *args: Any, where: str = "") -> Any:
    """``function(*args)``; an exception it raises becomes `UserFunctionError` naming `argument`.

    `where` says what was being evaluated (``"at the starting point"``), for the message.

    gradprobe's own errors pass through unchanged: one raised by the user's function already names
    its argument (a nested check, a wrapper such as `check_vjp` validating `f`), and rewrapping it
    would change its type with the path that ran it. Interrupts, exits and `MemoryError` pass too:
    they are not the function's fault, and the user must see them as they are.

    Examples
    --------
    >>> call_user(lambda x: 1 / x, "loss", 0.0, where="at the starting point")
    Traceback (most recent call last):
    ...
    gradprobe.UserFunctionError: `loss` raised ZeroDivisionError at the starting point: float division by zero
    """
    try:
        return function(*args)
    except (MemoryError, GradprobeError):
        raise
    except Exception as error:
        context = f" {where}" if where else ""
        raise UserFunctionError(
            f"`{argument}` raised {type(error).__name__}{context}: {error}", argument=argument
        ) from error


#: What a note quotes of the first error at a probe point: its first line, cut to this length.
NOTE_MESSAGE_CHARS = 120
#: Calls that tell a domain edge from a loss failing at random (`OutsideDomain.confirm`), once per
#: check; made only while an evaluation budget affords them.
CONFIRMATION_EVALUATIONS = 2


class OutsideDomain:
    """The probe points at which the user's loss raised: where it is undefined, outside its domain.

    Any evaluation but the starting point's is a probe point. There an ordinary exception (a
    `ValueError` from ``math.log`` of a step below 0, a framework's check that a probability lies in
    [0, 1]) means the loss is undefined at that point: its value is NaN, and the estimator's handling
    of non-finite values applies (finer steps; an element whose every step left the domain is
    inconclusive, `nonfinite`). Once per check, after the evaluation in which the loss first raised,
    it is called again at that point and at the starting point (`confirm`): a loss that returns a
    value at the first (it fails at random: a flaky connection, a stop signal of its own) or raises
    at the second (it broke for good: a diverged simulation, an exhausted iterator) is not undefined
    there but failing, and raises `UserFunctionError`, as at the starting point. Running out of
    memory says nothing about the point either, and raises at once.

    Serial, vectorized and executor evaluations record here alike (a worker's record comes back and
    is merged, in point order), so every path finds the same points and spends the same evaluations.
    """

    def __init__(self) -> None:
        self.points = 0  # probe points at which the loss raised
        self.returned = 0  # probe points at which it returned a value
        self.argument, self.message, self.where = "", "", ""
        self.kinds: list[str] = []  # the types of the errors, in order of appearance
        # The check's first error here, kept while it may still be raised: until `confirm`, and for
        # `note` while no probe point has returned a value. It holds the user's frames alive.
        self.first: UserFunctionError | None = None
        self.first_index: int | None = None  # its point's position in its evaluation, until confirmed
        self.confirmed = False

    def record(self, error: UserFunctionError, index: int, where: str) -> float:
        """NaN for the probe point at position `index` of the current evaluation (`where` says what
        was evaluated), where the loss raised `error`."""
        cause = error.__cause__ if error.__cause__ is not None else error
        # PyTorch's and JAX's are RuntimeErrors ("CUDA out of memory", "RESOURCE_EXHAUSTED: Out of memory").
        if isinstance(cause, MemoryError) or "out of memory" in str(cause).lower():
            raise error
        if not self.points:
            self.argument, self.message, self.where = error.argument or "loss", str(cause), where
            self.first, self.first_index = error, index
        if type(cause).__name__ not in self.kinds:
            self.kinds.append(type(cause).__name__)
        self.points += 1
        return math.nan

    def returned_values(self, count: int = 1) -> None:
        """`count` probe points returned a value: the loss is defined somewhere near the start."""
        self.returned += count
        if count and self.confirmed:
            self.first = None

    def confirm(self, again: Callable[[int | None], Any]) -> None:
        """After an evaluation in which the loss raised for the first time in the check: call it
        again at that point (``again(index)``) and at the starting point (``again(None)``), and
        raise `UserFunctionError` unless it raises at the one and returns a value at the other."""
        if self.confirmed or self.first is None or self.first_index is None:
            return
        first, index = self.first, self.first_index
        self.confirmed, self.first_index = True, None
        try:
            again(None)
        except UserFunctionError:
            failing = "it raised at the starting point too, where it had returned a value: it broke"
        else:
            try:
                again(index)
            except UserFunctionError:
                if self.returned:
                    self.first = None
                return
            failing = "called there again, it returned a value: it fails at random"
        raise UserFunctionError(
            f"{first} ({failing}, it is not undefined there)", argument=first.argument
        ) from first.__cause__

    def merge(self, other: OutsideDomain, offset: int) -> None:
        """Add what `other` saw (a worker's record of points from position `offset` on)."""
        if other.points and not self.points:
            self.argument, self.message, self.where = other.argument, other.message, other.where
            self.first = other.first
            self.first_index = None if other.first_index is None else other.first_index + offset
        self.kinds += [kind for kind in other.kinds if kind not in self.kinds]
        self.points += other.points
        self.returned_values(other.returned)

    def note(self) -> str | None:
        """The report's note on the points outside the domain (None if there were none).

        Raises `UserFunctionError` when the loss raised at every probe point: no step near the start,
        however small, in any direction, was inside the domain, so nothing was probed. That is not an
        edge of the domain but a loss that works only at the very point it was given, and reporting
        every element inconclusive would hide the error.

        Examples
        --------
        >>> domain = OutsideDomain()
        >>> try:
        ...     call_user(math.log, "loss", -1e-3, where="while probing `p`")
        ... except UserFunctionError as error:
        ...     value = domain.record(error, 0, "while probing `p`")
        >>> domain.returned_values(5)
        >>> domain.note()
        '`loss` raised ValueError at 1 probe point (first: math domain error); taken as outside its domain there, like a NaN value.'
        """
        if not self.points:
            return None
        kinds = " or ".join(self.kinds)
        if not self.returned:
            first = f", the first {self.where}" if self.where else ""
            raise UserFunctionError(
                f"`{self.argument}` raised {kinds} at every point it was evaluated at but the starting point "
                f"({self.points} points){first}: {self.message}",
                argument=self.argument,
            ) from (self.first.__cause__ if self.first is not None else None)
        lines = self.message.strip().splitlines()
        quoted = lines[0] if lines else ""
        if len(quoted) > NOTE_MESSAGE_CHARS or len(lines) > 1:
            quoted = quoted[:NOTE_MESSAGE_CHARS].rstrip() + "..."
        plural = "s" if self.points > 1 else ""
        return (
            f"`{self.argument}` raised {kinds} at {self.points} probe point{plural} (first: {quoted}); "
            "taken as outside its domain there, like a NaN value."
        )
