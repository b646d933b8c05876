"""The Judge (gradprobe._verdict) and the verdicts gp.check reaches with it.

One test per element status and per inconclusive reason; dtypes; kinks; complex step; shadow;
what a resolution promises; the Taylor slope.
"""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe._differences import Estimates
from gradprobe._verdict import (
    ELEMENT_STATUSES,
    FAIL,
    KINK,
    NOISE,
    NONFINITE,
    PASS,
    judge,
    resolution,
    tensor_status,
    undetectable,
)

DTYPES = [np.float16, np.float32, np.float64]


def estimates(numeric, error, jump=None, rough=None, at_point=None, analytic=1.0):
    n = np.atleast_1d(np.asarray(numeric, dtype=float))
    one = np.ones_like(n)
    jump = np.zeros_like(n) if jump is None else np.atleast_1d(np.asarray(jump, dtype=float))
    rough = np.zeros(len(n), bool) if rough is None else np.atleast_1d(rough)
    return Estimates(
        numeric=n, analytic=analytic * one, error=error * one, truncation=0 * one, roundoff=error / 4 * one,
        right=n + jump / 2, left=n - jump / 2, jump=jump, rough=rough,
        at_point=rough if at_point is None else np.atleast_1d(at_point),
    )  # fmt: skip


# -- element statuses, one each --------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, case",
    [
        ("pass", estimates(1.0 + 1e-9, 1e-8)),
        ("fail", estimates(1.5, 1e-8)),
        ("kink", estimates(0.5, 1e-8, jump=1.0, rough=True)),  # relu at 0: analytic 1 between 0 and 1
        ("noise", estimates(1.2, 0.5)),  # agrees, but only within half the gradient
        ("nonfinite", estimates(np.nan, 1e-8)),
    ],
)
def test_each_element_status(status, case):
    assert ELEMENT_STATUSES[judge(case, np.ones(1), np.zeros(1)).codes[0]] == status


def test_a_value_outside_the_one_sided_slopes_fails_even_at_a_kink():
    assert judge(estimates(0.5, 1e-8, jump=1.0, rough=True, analytic=3.0), np.ones(1), np.zeros(1)).codes[0] == FAIL


def test_still_rough_without_a_steady_jump_is_unresolved_not_a_verdict():
    case = estimates(0.5, 1e-8, jump=1.0, rough=True, at_point=False, analytic=3.0)
    assert judge(case, np.ones(1), np.zeros(1)).codes[0] == NOISE


def test_the_analytic_floor_absorbs_its_own_rounding():
    case = estimates(1.0 + 1e-15, 0.0)
    assert judge(case, np.ones(1), np.zeros(1)).codes[0] == FAIL
    assert judge(case, np.ones(1), np.full(1, 1e-14)).codes[0] == PASS


def test_tensor_status_and_reasons():
    assert tensor_status(np.array([PASS, KINK])) == ("pass", None)
    assert tensor_status(np.array([FAIL, NONFINITE])) == ("fail", None)
    assert tensor_status(np.array([PASS, NONFINITE])) == ("inconclusive", "nonfinite")
    assert tensor_status(np.array([KINK, KINK])) == ("inconclusive", "kink")
    assert tensor_status(np.array([PASS, NOISE]), 0.5) == ("inconclusive", "noise")
    assert tensor_status(np.array([PASS, NOISE]), 0.05) == ("pass", None)
    assert tensor_status(np.array([PASS, PASS]), np.inf, zero=True) == ("pass", None)


def test_resolution_is_the_norm_of_what_could_hide():
    e = estimates([3.0, 4.0], 1e-3)
    bound = undetectable(e, np.array([PASS, PASS]), np.zeros(2))
    assert bound == pytest.approx([2e-3, 2e-3])
    assert resolution(bound, e.numeric, 1.0) == pytest.approx(np.sqrt(2) * 2e-3 / 5)
    kink = undetectable(estimates([0.5], 1e-3, jump=1.0, rough=True), np.array([KINK]), np.zeros(1))
    assert kink[0] == pytest.approx(2e-3 + 0.5)
    assert resolution(np.array([np.inf]), np.ones(1), 1.0) == np.inf


# -- end to end: every status and reason from gp.check ----------------------------------------------


def cube(p):
    return float(np.sum(np.asarray(p, dtype=np.float64) ** 3))


def test_pass_and_fail_end_to_end():
    x = np.array([0.5, -1.0, 2.0])
    assert gp.check(cube, lambda p: 3 * p**2, x).status == "pass"
    assert gp.check(cube, lambda p: 3 * p**2 * [1, 1.001, 1], x).failing == ("params",)


def test_inconclusive_kink_end_to_end():
    report = gp.check(lambda p: float(np.sum(np.abs(p))), lambda p: np.sign(p), np.zeros(3))
    t = report.tensors["params"]
    assert (report.status, t.reason, t.kinks) == ("inconclusive", "kink", ((0,), (1,), (2,)))


def test_inconclusive_nonfinite_end_to_end():
    def loss(p):
        with np.errstate(invalid="ignore"):
            return float(np.sum(np.sqrt(p)))

    report = gp.check(loss, lambda p: 0.5 / np.sqrt(p), np.array([1e-300, 1.0]))
    assert (report.status, report.tensors["params"].reason) == ("inconclusive", "nonfinite")
    assert report.tensors["params"].counts["nonfinite"] == 1


def test_inconclusive_noise_end_to_end():
    rng = np.random.default_rng(0)
    loss = lambda p: float(np.sum(p**2)) + 1e-2 * rng.standard_normal()  # noqa: E731
    report = gp.check(loss, lambda p: 2 * p, np.array([0.1, -0.2]))
    assert (report.status, report.tensors["params"].reason) == ("inconclusive", "noise")


# -- dtypes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float16", "float32", "float64"])
def test_every_dtype_passes_right_and_fails_wrong_without_settings(dtype):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4, 5)).astype(dtype)
    v = rng.standard_normal(4).astype(dtype)
    loss = lambda p: np.sum(np.tanh(v @ p))  # computed in the parameters' dtype  # noqa: E731
    grad = lambda p: np.outer(v, 1 - np.tanh(v @ p) ** 2)  # noqa: E731
    right = gp.check(loss, grad, W)
    assert right.status != "fail"
    if dtype != np.float16:  # half precision resolves about 10%: honestly inconclusive at best
        assert right.status == "pass" and right.resolution < (1e-2 if dtype == np.float32 else 1e-7)
    assert gp.check(loss, lambda p: 1.5 * grad(p), W).failing == ("params",)


def test_float32_fails_an_error_above_its_stated_resolution():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((6, 6)).astype(np.float32)
    loss = lambda p: np.sum(np.tanh(p) ** 2)  # noqa: E731
    grad = lambda p: 2 * np.tanh(p) * (1 - np.tanh(p) ** 2)  # noqa: E731
    stated = gp.check(loss, grad, W).resolution
    assert stated < 3e-3
    assert gp.check(loss, lambda p: grad(p) * (1 + 1.5 * stated), W).status == "fail"


def test_shadow_evaluates_in_float64_and_sharpens_the_check():
    x = np.array([0.3, -1.2, 2.0], dtype=np.float32)
    loss = lambda p: np.sum(np.tanh(p) ** 3)  # noqa: E731
    grad = lambda p: 3 * np.tanh(p) ** 2 * (1 - np.tanh(p) ** 2)  # noqa: E731
    seen = []

    def recording(p):
        seen.append(p.dtype)
        return loss(p)

    plain, shadow = gp.check(loss, grad, x), gp.check(recording, grad, x, shadow=True)
    assert set(seen) == {np.dtype(np.float64)}
    assert shadow.ok and shadow.resolution < plain.resolution / 30


# -- kinks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss, grad, x",
    [
        (lambda p: float(np.sum(np.maximum(p, 0))), lambda p: (p > 0).astype(float), np.array([0.0, 1.0, -2.0])),
        (lambda p: float(np.sum(np.abs(p))), np.sign, np.array([0.0, 0.7, -0.3])),
        (lambda p: float(np.max(p)), lambda p: (p == p.max()) / np.sum(p == p.max()), np.array([1.0, 1.0, 0.2])),
    ],
    ids=["relu at 0", "abs at 0", "max with a tie"],
)
def test_kinks_are_named_not_failed(loss, grad, x):
    report = gp.check(loss, grad, x)
    t = report.tensors["params"]
    assert t.status != "fail" and t.counts["kink"] >= 1 and len(t.kinks) == t.counts["kink"]


def relu_network(dtype, seed):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((32, 8)), rng.integers(0, 3, 32)
    params = {"W0": rng.standard_normal((8, 16)) * 0.5, "b0": np.zeros(16), "W1": rng.standard_normal((16, 3)) * 0.35,
              "b1": np.zeros(3)}  # fmt: skip
    params = {k: v.astype(dtype) for k, v in params.items()}
    Xd = X.astype(dtype)

    def forward(p):
        z = Xd @ p["W0"] + p["b0"]
        h = np.maximum(z, 0)
        o = h @ p["W1"] + p["b1"]
        o = o - o.max(axis=1, keepdims=True)
        logp = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        return z, h, logp

    def loss(p):
        return -forward(p)[2][np.arange(32), y].mean()

    def grad(p):
        z, h, logp = forward(p)
        d = np.exp(logp)
        d[np.arange(32), y] -= 1
        d /= 32
        dh = d @ p["W1"].T * (z > 0)
        return {"W0": Xd.T @ dh, "b0": dh.sum(0), "W1": h.T @ d, "b1": d.sum(0)}

    return loss, grad, params


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_relu_network_at_random_init_is_not_reported_wrong(dtype):
    for seed in range(3):
        loss, grad, params = relu_network(dtype, seed)
        report = gp.check(loss, grad, params)
        assert report.status != "fail", report
        if dtype == np.float64:
            assert report.ok
        bad = gp.check(loss, lambda p: {**grad(p), "W1": 2 * grad(p)["W1"]}, params)
        assert bad.failing == ("W1",)


# -- complex step --------------------------------------------------------------------------------------


def test_complex_step_is_exact_to_rounding():
    x = np.array([0.3, -1.2, 2.0])
    loss = lambda p: np.sum(np.sin(p) * np.exp(p))  # noqa: E731
    grad = lambda p: (np.cos(p) + np.sin(p)) * np.exp(p)  # noqa: E731
    report = gp.check(loss, grad, x, method="complex")
    assert report.ok and report.method == "complex" and report.resolution < 1e-12
    assert gp.check(loss, lambda p: grad(p) * (1 + 1e-9), x, method="complex").status == "fail"


@pytest.mark.parametrize(
    "loss, message",
    [
        (lambda p: np.sum(np.abs(p)), "drops or mangles the imaginary part"),
        (lambda p: np.sum(np.real(p) ** 2), "drops or mangles the imaginary part"),
    ],
    ids=["abs", "real"],
)
def test_complex_step_refuses_a_loss_that_does_not_support_it(loss, message):
    with pytest.raises(gp.InvalidArgument, match=message) as info:
        gp.check(loss, lambda p: 2 * p, np.array([0.3, -1.2]), method="complex")
    assert info.value.argument == "method" and "method='richardson'" in str(info.value)


def test_complex_step_refuses_a_loss_that_rejects_complex_input():
    def loss(p):
        if np.iscomplexobj(p):
            raise TypeError("real only")
        return float(np.sum(p**2))

    with pytest.raises(gp.InvalidArgument, match="accepts complex parameters"):
        gp.check(loss, lambda p: 2 * p, np.array([0.3, -1.2]), method="complex")


# -- the Taylor test -------------------------------------------------------------------------------------


def test_taylor_slope_is_two_for_a_right_gradient_and_one_for_a_wrong_one():
    x = np.random.default_rng(5).standard_normal(6)
    loss = lambda p: float(np.sum(np.sin(p) * p))  # noqa: E731
    grad = lambda p: np.cos(p) * p + np.sin(p)  # noqa: E731
    wrong = gp.check(loss, lambda p: grad(p) + 0.01, x)
    assert wrong.tensors["params"].taylor_slope == pytest.approx(1.0, abs=0.15)
    assert gp.check(loss, grad, x).tensors["params"].taylor_slope is None  # reported for failing tensors only
    assert _taylor_slope_of(loss, grad, x) == pytest.approx(2.0, abs=0.15)


def _taylor_slope_of(loss, grad, x):
    """The Taylor slope of a right gradient along a fixed direction, through the checker."""
    from gradprobe._check import _analytic_gradient, _Checker
    from gradprobe._objective import Objective
    from gradprobe._options import validate_options
    from gradprobe._params import Params

    params = Params(x)
    analytic, _ = _analytic_gradient(grad, params)
    options = validate_options(strategy="auto", method="auto", rtol=None, seed=0, shadow=False, batch_size=None)
    checker = _Checker(Objective(loss, params), params, analytic, options)
    f0 = checker.objective.initial()
    checker._noise(f0)
    return checker._taylor_slope(f0, params.leaves[0], np.linspace(1, 2, x.size))
