"""Screening (`estimate._screening`): most elements cost two evaluations, and an element's error
bar still means what it says: an error just outside it fails, one well inside passes."""

from __future__ import annotations

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.estimate import _screening as screening

from benchmarks.bugsuite import cases as bugsuite


def _tanh_sum(dtype):
    x = np.random.default_rng(3).standard_normal(60).astype(dtype)
    loss = lambda p: np.sum(np.tanh(p["x"]) ** 2 * np.sin(p["x"]))  # noqa: E731

    def grad(p):
        t, x = np.tanh(p["x"]), p["x"]
        return {"x": 2 * t * (1 - t**2) * np.sin(x) + t**2 * np.cos(x)}

    return loss, grad, {"x": x}


def _one_fast_element(dtype):
    # Element 17 varies 40 times faster than the others: its truncation is far beyond any scout's.
    x = np.random.default_rng(4).uniform(-1, 1, 50).astype(dtype)
    a = np.ones(50)
    a[17] = 40.0
    loss = lambda p: np.sum(np.sin(a * p["x"]))  # noqa: E731
    return loss, lambda p: {"x": a * np.cos(a * p["x"])}, {"x": x}


def _mlp(dtype):
    case = next(c for c in bugsuite.cases(dtype) if c.name == "mlp_tanh")
    return case.loss, case.grad, case.params


PROBLEMS = [
    (_tanh_sum, np.float64), (_tanh_sum, np.float32), (_mlp, np.float64), (_mlp, np.float32),
    (_one_fast_element, np.float64), (_one_fast_element, np.float32),
]


def _screened_positions(size: int) -> np.ndarray:
    """Positions of a tensor checked whole that are screened, not scouts."""
    return np.setdiff1d(np.arange(size), screening.scout_positions(size))


def _planted(grad, name, flat_index, error):
    def wrong(p):
        g = {k: np.array(v, copy=True) for k, v in grad(p).items()}
        g[name].reshape(-1)[flat_index] += error
        return g

    return wrong


@pytest.mark.parametrize("problem, dtype", PROBLEMS)
def test_an_error_just_outside_an_elements_error_bar_fails_and_one_well_inside_passes(problem, dtype):
    loss, grad, params = problem(dtype)
    right = gp.check(loss, grad, params, strategy="full")
    assert right.status == "pass"
    name = max(params, key=lambda k: params[k].size)
    tensor = right.tensors[name]
    flats = _screened_positions(params[name].size)[::7][:4]
    for flat in np.union1d(flats, [17]) if problem is _one_fast_element else flats:
        bar = float(tensor.error_bar.reshape(-1)[flat])
        # An error the check cannot miss: twice the bar (the estimate may be off by one bar) and a bit.
        outside = gp.check(loss, _planted(grad, name, flat, 2.2 * bar), params, strategy="full")
        assert outside.status == "fail" and outside.tensors[name].counts["fail"] >= 1, (flat, bar)
        assert outside.tensors[name].worst[0].index == np.unravel_index(flat, params[name].shape)
        inside = gp.check(loss, _planted(grad, name, flat, 0.1 * bar), params, strategy="full")
        assert inside.status == "pass", (flat, bar)


@pytest.mark.parametrize("problem, dtype", PROBLEMS)
def test_a_correct_gradient_costs_about_two_evaluations_per_parameter(problem, dtype):
    loss, grad, params = problem(dtype)
    n = sum(v.size for v in params.values())
    report = gp.check(loss, grad, params, strategy="full")
    assert report.status == "pass"
    assert report.nfev <= 2.5 * n + 120, (report.nfev, n)
