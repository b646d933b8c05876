"""`assert_gradients`: `check`, raising `GradientMismatch` (an AssertionError) unless it passes.

`assert_passes` is the assertion itself, shared with the framework adapters' `assert_gradients`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._check import check
from .._errors import GradientMismatch, InvalidArgument
from ..report._types import Report


def assert_gradients(
    loss: Callable[[Any], Any],
    grad: Callable[[Any], Any],
    params: Any,
    *,
    allow_inconclusive: bool = False,
    **options: Any,
) -> Report:
    """Check `grad` like `check` does, and raise `GradientMismatch` unless the check passes.

    The exception's message is the readable report (diagnosis, worst elements, hint and a line
    that reproduces the check); its `report` attribute is the `Report`. In pytest the traceback
    stops at the test's own line.

    Parameters
    ----------
    loss, grad, params
        As for `check`.
    allow_inconclusive : bool
        Return instead of raising when the check could not decide (a noisy loss, a point on a
        kink). By default an undecided check fails the assertion, as it proves nothing.
    **options
        Any keyword option of `check` (``strategy``, ``method``, ``rtol``, ``seed``...).

    Returns
    -------
    Report
        The report of a check that passed (or was inconclusive, if allowed).

    Raises
    ------
    GradientMismatch
        When the check fails (or is inconclusive and `allow_inconclusive` is False).

    Examples
    --------
    >>> import numpy as np, gradprobe as gp
    >>> x = np.array([1.0, 2.0])
    >>> gp.assert_gradients(lambda p: np.sum(p**3), lambda p: 3 * p**2, x).status
    'pass'
    >>> gp.assert_gradients(lambda p: np.sum(p**3), lambda p: 6 * p**2, x)
    Traceback (most recent call last):
    ...
    gradprobe.GradientMismatch: gradprobe FAIL: 1 of 1 tensors wrong (params)
    ...
    """
    __tracebackhide__ = True
    return assert_passes(lambda: check(loss, grad, params, **options), allow_inconclusive)


def assert_passes(run: Callable[[], Report], allow_inconclusive: bool) -> Report:
    """The assertion every `assert_gradients` shares (numpy, ``gradprobe.torch``, ``gradprobe.jax``).

    `run` makes the report; it is called only once `allow_inconclusive` is known to be valid,
    so a bad flag is refused before any work.
    """
    __tracebackhide__ = True
    if not isinstance(allow_inconclusive, bool):
        raise InvalidArgument(
            f"`allow_inconclusive` must be True or False, got {allow_inconclusive!r}.", argument="allow_inconclusive"
        )
    report = run()
    if report.status == "fail" or (report.status == "inconclusive" and not allow_inconclusive):
        raise GradientMismatch(report)
    return report
