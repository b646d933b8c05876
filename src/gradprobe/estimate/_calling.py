"""The one policy for calling a user's function (`loss`, `grad`, `vjp`, `f`...): what its
exceptions become. Serial, vectorized and executor evaluations all go through `call_user`, so the
same user error surfaces as the same exception, naming the same argument, whichever path ran it."""

from __future__ import annotations

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
