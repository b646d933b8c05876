"""`gradprobe demo`: the seed assignment through `gradprobe.check`."""

from __future__ import annotations

import sys

import numpy as np

from ..strategies._check import check
from ..examples import deeplearning_ai as dla


def run_demo(print_=print, *, color: str = "auto") -> int:
    """Print the three checks of the seed and return how many verdicts were not as expected.

    Reports go through `print_` as plain text, or, when `print_` is `print`, to the terminal with
    rich tables and colour when stdout is one (`color` "auto"), is forced to ("always"), or never.
    """
    from ..report._terminal import show
    x, theta = 2.0, 4.0
    one_d = check(
        lambda p: dla.forward_propagation(x, p["theta"]),
        lambda p: {"dtheta": dla.backward_propagation(x, p["theta"])},
        {"theta": theta},
    )
    X, Y, parameters = dla.gradient_check_n_test_case()
    buggy = check(*dla.loss_and_grad(X, Y, dla.backward_propagation_n), parameters)
    fixed = check(*dla.loss_and_grad(X, Y, dla.backward_propagation_n_fixed), parameters)

    sections = [
        ("1-D check: J = theta * x at x = 2, theta = 4, dtheta = x", one_d, "pass"),
        ("3-layer network, backward_propagation_n as published (two planted bugs)", buggy, "fail"),
        ("3-layer network, backward_propagation_n fixed", fixed, "pass"),
    ]
    for title, report, _ in sections:
        print_(f"== {title}")
        if print_ is print:
            show(report, sys.stdout, color=color)  # type: ignore[arg-type]
        else:
            print_(str(report))
        print_("")
    print_(
        "The course's own rule (epsilon 1e-7, threshold 1e-7) calls the fixed network wrong: its "
        f"difference is {fixed.difference:.3g} by gradprobe's estimate, 1.19e-07 by the course's. "
        "gradprobe judges each element against an error bar instead."
    )
    unexpected = sum(report.status != expected for _, report, expected in sections)
    return unexpected + int(np.isnan(buggy.difference))
