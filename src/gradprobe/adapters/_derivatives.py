"""Which derivative rule a framework check tests: the backward at orders 1 to k, or forward mode.

``order=k`` checks orders 1 to k. Order k + 1 is the first-order check of
``x -> <w, gradient of order k's contraction>`` for a fixed random ``w``: its gradient is the
derivative of the order-k VJP (double backward, for k = 1), its numerical side differences of
that VJP. ``mode="forward"`` checks forward-mode rules (a torch ``Function.jvp``, a
``jax.custom_jvp``): the gradient under test is assembled from JVPs along unit vectors and
compared with the same numerical derivatives. Every framework builds these its own way; the
checks of the options and the choice of the report to show are shared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .._errors import InvalidArgument
from ..report._types import Report

#: Highest order checked: each order differentiates the one below, so the cost grows with it.
MAX_ORDER = 4
#: The seed stream of the random `w` that contracts order k's gradient into order k + 1's loss.
ORDER_STREAM = 3
MODES = ("reverse", "forward", "both")
FORWARD_NOTE = (
    "mode forward: the gradient under test is assembled from forward-mode AD (your jvp rules), element i the "
    "derivative along the i-th unit vector, and compared with the same numerical derivatives as the backward."
)


def grad_output_names(count: int, taken: set[str]) -> list[str]:
    """Report names of the cotangents that a higher order takes as inputs: ``grad_output`` (or
    ``grad_output0``, ``grad_output1``... for several outputs), clear of the inputs' names.

    Examples
    --------
    >>> grad_output_names(1, {"x"}), grad_output_names(2, {"grad_output0"})
    (['grad_output'], ['grad_output0_', 'grad_output1'])
    """
    names = ["grad_output"] if count == 1 else [f"grad_output{i}" for i in range(count)]
    unique = []
    for name in names:
        while name in taken:
            name += "_"
        unique.append(name)
    return unique


def require_derivative(order: Any, mode: Any, oracle: str) -> tuple[int, tuple[str, ...]]:
    """`order` as an int in 1..MAX_ORDER and `mode` as the modes to check, or an error naming the
    argument, before any work."""
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise InvalidArgument(
            f"`order` must be an integer from 1 to {MAX_ORDER} (1: the gradient, 2: also its derivative, the double "
            f"backward), got {order!r}.",
            argument="order",
        )
    if mode not in MODES:
        raise InvalidArgument(
            f"`mode` must be 'reverse' (the backward), 'forward' (forward-mode rules, jvp) or 'both', got {mode!r}.",
            argument="mode",
        )
    if order > 1 and oracle == "forward":
        raise InvalidArgument(
            "`order` above 1 needs derivatives of a gradient that autograd computes, which forward-mode AD "
            "(oracle='forward') does not differentiate here; use oracle='differences' with order=2.",
            argument="order",
        )
    if order > 1 and mode != "reverse":
        raise InvalidArgument(
            "`mode` must be 'reverse' with `order` above 1, which checks derivatives of the backward; check "
            "forward-mode rules with order=1, mode='forward'.",
            argument="mode",
        )
    if mode != "reverse" and oracle == "forward":
        raise InvalidArgument(
            "`oracle`='forward' cannot check forward-mode rules (mode='forward' or 'both'): those rules would be their "
            "own reference. Use the default oracle='differences'.",
            argument="oracle",
        )
    return order, (("reverse", "forward") if mode == "both" else (mode,))


def refuse_own_reference(rules: list[str]) -> None:
    """oracle='forward' takes exact derivatives from forward mode; where the VJP is derived from
    the same user rule (a jax.custom_jvp, transposed), the two always agree: no check at all."""
    if rules:
        raise InvalidArgument(
            f"`oracle`='forward' would take its reference derivatives from your own forward-mode rules "
            f"({', '.join(rules)}), from which the VJP is derived too: they would always agree. Use the default "
            "oracle='differences' (add mode='both' to check the jvp rules too).",
            argument="oracle",
        )


def against_own_jvp(report: Report, rules: list[str]) -> Report:
    """A check whose oracle='forward' reference ran the user's own jvp rules (a torch Function's
    `jvp`, written apart from its backward): a disagreement is the backward's fault or the jvp's,
    and a pass says the two agree."""
    if not rules:
        return report
    tensors = {
        name: replace(t, finding=replace(t.finding, against="jvp")) if t.status == "fail" and t.finding else t
        for name, t in report.tensors.items()
    }
    note = (
        f"the forward-mode reference ran your own jvp rules ({', '.join(rules)}): a pass says your backward agrees "
        "with them, a failure that one of the two is wrong; mode='both' checks each against numerical derivatives."
    )
    return replace(report, tensors=tensors, notes=(note, *report.notes))


def shown(parts: list[tuple[int, str, Report]]) -> Report:
    """One report for the (order, mode, report) parts checked: the first that fails, else the first
    inconclusive one, else the last, standing for all (`order` the highest, `mode` "both" when both
    were checked); with the evaluations of all, and a note on how the others went."""
    failing = next((p for status in ("fail", "inconclusive") for p in parts if p[2].status == status), None)
    if failing is None:
        modes = {m for _, m, _ in parts}
        order, mode, report = max(o for o, _, _ in parts), "both" if len(modes) > 1 else modes.pop(), parts[-1][2]
    else:
        order, mode, report = failing
    # Each point's own report (points=k) is about the same derivative.
    points = tuple(replace(point, order=order, mode=mode) for point in report.points)
    report = replace(report, order=order, mode=mode, points=points)
    if len(parts) == 1:
        return report
    labels = ", ".join(_label(o, m) for o, m, _ in parts)
    about = "every one passed" if failing is None else f"the verdict above is of {_label(order, mode)}"
    others = "; ".join(
        f"{_label(o, m)}: {r.status} (resolution {r.resolution:.1e}, {r.nfev} evaluations)"
        for o, m, r in parts if failing is None or (o, m) != (order, mode)
    )  # fmt: skip
    note = f"checked {labels}; {about}. {others}."
    # What the first order's check said of the function (its vector output's cotangent) holds for all.
    first = [n for n in parts[0][2].notes if n != FORWARD_NOTE] if parts[0][1] == "reverse" else []
    notes = dict.fromkeys([note, *report.notes, *first])
    return replace(report, nfev=sum(r.nfev for _, _, r in parts), notes=tuple(notes))


def _label(order: int, mode: str) -> str:
    if mode == "forward":
        return "forward mode (jvp)"
    if order == 1:
        return "order 1 (the backward)"
    return "order 2 (double backward)" if order == 2 else f"order {order}"
