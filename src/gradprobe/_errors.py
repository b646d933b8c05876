"""Exceptions. Bad input raises; a wrong gradient is a status in the report, never an exception
(except through `assert_gradients`, which exists to raise)."""

from __future__ import annotations

from typing import Any


class GradprobeError(Exception):
    """Root of every error gradprobe raises for bad input or unusable functions.

    Attributes
    ----------
    argument : str or None
        The name of the argument at fault (``"params"``, ``"loss"``...), when there is one.
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class InvalidArgument(GradprobeError, TypeError):
    """An argument has the wrong type, structure, shape or dtype.

    Also a `TypeError`, so ``except TypeError`` keeps working.
    """


class InvalidValue(GradprobeError, ValueError):
    """An argument, or a value the user's function returned, is unusable (NaN, inf, empty...).

    Also a `ValueError`.
    """


class UserFunctionError(GradprobeError, RuntimeError):
    """The user's `loss`, `grad` or `vjp` raised. The original exception is chained as ``__cause__``."""


class GradientMismatch(AssertionError):
    """Raised by `assert_gradients` when a check does not pass; carries the `report`."""

    def __init__(self, report: Any) -> None:
        super().__init__(str(report))
        self.report = report
