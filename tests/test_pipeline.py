"""The pipeline's orchestration: budgets are kept, a budget never changes a verdict it affords,
and the cost model matches what runs."""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.params._params import Params
from gradprobe.strategies._cost import expected_evaluations, full_cost, setup_cost
from gradprobe.strategies._options import validate_options

STRATEGIES = ("auto", "full", "directional", "sample")


def _options(**given):
    defaults = dict(strategy="auto", method="auto", rtol=None, seed=0, shadow=None, batch_size=None)
    return validate_options(**{**defaults, **given})


def _problem(size):
    x = np.random.default_rng(size).standard_normal(size)
    loss = lambda p: float(np.sum(np.tanh(p) * np.sin(p)))  # noqa: E731
    grad = lambda p: (1 - np.tanh(p) ** 2) * np.sin(p) + np.tanh(p) * np.cos(p)  # noqa: E731
    return loss, grad, x


def _minimum(strategy, size):
    params = Params(np.zeros(size))
    candidates = ("full", "directional") if strategy == "auto" else (strategy,)
    return min(setup_cost(_options(strategy=strategy), s, params, worst=True) for s in candidates)


@pytest.mark.slow  # 160 checks of checks: the full profile (CI) runs them, --fast leaves them out
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("size", range(1, 41))
def test_the_budget_is_never_overrun_and_a_smaller_one_is_refused_naming_the_minimum(size, strategy):
    loss, grad, x = _problem(size)
    minimum = _minimum(strategy, size)
    with pytest.raises(gp.InvalidValue, match=f"give at least {minimum}") as refused:
        gp.check(loss, grad, x, strategy=strategy, budget=minimum - 1)
    assert refused.value.argument == "budget"
    worst = full_cost(_options(strategy=strategy), Params(x), worst=True)
    for budget in sorted({minimum, minimum + 1, minimum + 9, minimum + 60, (minimum + worst) // 2, worst}):
        report = gp.check(loss, grad, x, strategy=strategy, budget=budget)
        assert report.nfev <= budget, (budget, report.strategy, report.coverage.evaluations)
        assert report.status != "fail"  # the gradient is right: a budget may leave it undecided, never wrong
        assert report.coverage.complete or report.status == "inconclusive"


def _same_report(budgeted, unbounded):
    assert budgeted.status == unbounded.status and budgeted.strategy == unbounded.strategy
    assert budgeted.nfev == unbounded.nfev
    assert budgeted.resolution == pytest.approx(unbounded.resolution, rel=1e-12)
    assert budgeted.difference == pytest.approx(unbounded.difference, rel=1e-12, abs=1e-300)
    for name, tensor in unbounded.tensors.items():
        other = budgeted.tensors[name]
        assert (other.status, other.reason, other.diagnosis, other.hint) == (tensor.status, tensor.reason, tensor.diagnosis, tensor.hint)
        assert other.counts == tensor.counts and other.kinks == tensor.kinks
        assert [e.index for e in other.worst] == [e.index for e in tensor.worst]
        assert other.resolution == pytest.approx(tensor.resolution, rel=1e-12)
        np.testing.assert_allclose(other.numeric, tensor.numeric, rtol=1e-12)


ZERO_TENSOR = (
    lambda p: float(np.sum(np.tanh(p["W"]) ** 2)),
    lambda p: {"W": 2 * np.tanh(p["W"]) * (1 - np.tanh(p["W"]) ** 2), "z": np.zeros(3)},
    {"W": np.random.default_rng(0).standard_normal((4, 3)), "z": np.random.default_rng(1).standard_normal(3)},
)


def _wrong_bias():
    rng = np.random.default_rng(3)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3), "x": rng.standard_normal(4)}
    loss = lambda p: float(np.sum(np.tanh(p["W"] @ p["x"] + p["b"])))  # noqa: E731

    def grad(p):
        s = 1 - np.tanh(p["W"] @ p["x"] + p["b"]) ** 2
        return {"W": np.outer(s, p["x"]), "b": 2 * s, "x": p["W"].T @ s}

    return loss, grad, params


@pytest.mark.parametrize("case", [ZERO_TENSOR, _wrong_bias()], ids=["zero-tensor", "wrong-bias"])
@pytest.mark.parametrize("budget", [10**7, "1h"])
def test_a_budget_that_affords_the_full_check_gives_the_unbounded_report(case, budget):
    loss, grad, params = case
    unbounded = gp.check(loss, grad, params, strategy="full")
    _same_report(gp.check(loss, grad, params, strategy="full", budget=budget), unbounded)


def test_a_budget_no_longer_turns_a_tensor_the_loss_ignores_inconclusive():
    loss, grad, params = ZERO_TENSOR
    for kwargs in ({}, {"budget": 10**7}, {"strategy": "sample"}, {"strategy": "full", "budget": "1h"}):
        report = gp.check(loss, grad, params, **kwargs)
        assert report.status == "pass", kwargs
        assert report.tensors["z"].resolution < 1e-6, kwargs


def test_a_small_budget_on_one_parameter_is_kept_and_checks_it():
    loss, grad, x = _problem(1)
    report = gp.check(loss, grad, x, budget=40)
    assert report.nfev <= 40 and report.status == "pass" and report.coverage.complete
    with pytest.raises(gp.InvalidValue, match="give at least 149"):
        gp.check(loss, grad, x, budget=32, strategy="full")


@pytest.mark.parametrize("size", [1, 5, 47, 500])
def test_the_progress_total_is_close_to_what_a_full_check_spends(size):
    loss, grad, x = _problem(size)
    report = gp.check(loss, grad, x, strategy="full")
    expected = expected_evaluations(_options(strategy="full"), "full", Params(x))
    assert abs(expected - report.nfev) <= 0.15 * report.nfev, (expected, report.nfev)


@pytest.mark.parametrize("strategy", ["full", "sample", "auto"])
def test_a_time_budget_stops_the_coordinate_strategies_and_says_so(strategy):
    import time

    x = np.random.default_rng(0).standard_normal(57)

    def slow_loss(p):
        time.sleep(0.005)
        return float(np.sum(np.tanh(p) ** 2))

    grad = lambda p: 2 * np.tanh(p) * (1 - np.tanh(p) ** 2)  # noqa: E731
    unbounded = gp.check(lambda p: float(np.sum(np.tanh(p) ** 2)), grad, x, strategy=strategy)
    report = gp.check(slow_loss, grad, x, strategy=strategy, budget="0.4s")
    # Without the budget the check takes ~2 s of sleeps: it must stop well before, and say what it left out.
    assert report.nfev < unbounded.nfev
    assert not report.coverage.complete and report.coverage.not_covered
    assert report.status == "inconclusive"
