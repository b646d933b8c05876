"""The Judge (gradprobe.judge._verdict) and the verdicts gp.check reaches with it.

One test per element status and per inconclusive reason; dtypes; kinks; complex step; shadow;
what a resolution promises; the Taylor slope.
"""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.estimate._differences import Estimates
from gradprobe.judge._verdict import (
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


def test_a_kink_at_the_point_is_undecided_whatever_the_value_and_counts_against_the_resolution():
    # Outside the one-sided slopes too: for tied terms a correct backward can land there.
    outside = estimates(0.5, 1e-8, jump=1.0, rough=True, analytic=3.0)
    judgement = judge(outside, np.ones(1), np.zeros(1))
    assert judgement.codes[0] == KINK
    assert undetectable(outside, judgement.codes, judgement.floor)[0] >= abs(3.0 - 0.5)


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
    # float16: the loss is evaluated in float64 (shadow=None), the float16 gradient's own rounding
    # (16 ulps, about 2%) is what is left.
    assert right.status == "pass" and right.resolution < {np.float16: 0.1, np.float32: 1e-2, np.float64: 1e-7}[dtype]
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

    plain, shadow = gp.check(loss, grad, x, shadow=False), gp.check(recording, grad, x, shadow=True)
    assert set(seen) == {np.dtype(np.float64)}
    assert shadow.ok and shadow.resolution < plain.resolution / 30
    assert (plain.reference, shadow.reference) == ("native", "float64")
    default = gp.check(loss, grad, x)  # float32 parameters get the float64 reference by default
    assert default.reference == "float64" and default.tensors == shadow.tensors and default.nfev == shadow.nfev


def float16_layer():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((6, 5)).astype(np.float16)
    X = rng.standard_normal((8, 6)).astype(np.float16)

    def loss(p):
        return np.mean(np.tanh(X @ p) ** 2)  # in the parameters' dtype (X promotes to float64)

    def grad(p):
        h = np.tanh(X @ p)
        return X.T @ (2 * h * (1 - h**2)) / h.size

    return loss, grad, W


def test_float16_works_with_no_setting_by_evaluating_the_loss_in_float64():
    loss, grad, W = float16_layer()
    seen = []

    def recording(p):
        seen.append(p.dtype)
        return loss(p)

    right = gp.check(recording, grad, W)
    assert right.ok and right.resolution < 0.1
    assert set(seen) == {np.dtype(np.float64)}
    assert right.reference == "float64" and "reference float64" in str(right)
    wrong = gp.check(loss, lambda p: 2 * grad(p), W)
    assert wrong.failing == ("params",) and wrong.tensors["params"].diagnosis == "2.00x"
    assert right.reproduce == "gp.check(loss, grad, params, strategy='full', method='richardson', seed=0)"


def test_float16_without_shadow_is_honestly_inconclusive():
    loss, grad, W = float16_layer()
    report = gp.check(loss, grad, W, shadow=False)
    t = report.tensors["params"]
    assert (report.status, t.reason) == ("inconclusive", "noise") and t.resolution > 0.1
    assert not any("float64" in note for note in report.notes)
    assert "shadow=False" in report.reproduce


def test_float16_falls_back_to_its_own_precision_when_the_loss_refuses_float64():
    loss, grad, W = float16_layer()

    def half_only(p):
        if p.dtype != np.float16:
            raise TypeError("half precision only")
        return loss(p)

    report = gp.check(half_only, grad, W)
    assert report.status != "fail"
    assert any("could not be evaluated in float64" in note and "half precision only" in note for note in report.notes)
    assert gp.check(half_only, lambda p: 2 * grad(p), W).status != "pass"
    nan_in_float64 = lambda p: loss(p) if p.dtype == np.float16 else float("nan")  # noqa: E731
    assert any("could not be evaluated in float64" in note for note in gp.check(nan_in_float64, grad, W).notes)
    with pytest.raises(gp.UserFunctionError, match="half precision only"):
        gp.check(half_only, grad, W, shadow=True)  # asked for explicitly: no fallback


def test_float16_gradient_rounding_is_measured_not_mistaken_for_a_bug():
    # The float16 backward rounds each step; called in float64, the same `grad` shows by how much.
    rng = np.random.default_rng(4)
    layers = [rng.standard_normal((6, 6)).astype(np.float16) * np.float16(0.6) for _ in range(4)]
    x = rng.standard_normal(6).astype(np.float16)

    def forward(p):
        hs = [x]
        for W in p:
            hs.append(np.tanh(W @ hs[-1]))
        return hs

    def loss(p):
        return float(np.sum(forward(p)[-1]))

    def grad(p):
        hs, g, out = forward(p), np.ones(6, dtype=p[0].dtype), []
        for W, h_in, h_out in zip(reversed(p), reversed(hs[:-1]), reversed(hs[1:])):
            d = g * (1 - h_out**2)
            out.append(np.outer(d, h_in))
            g = W.T @ d
        return out[::-1]

    report = gp.check(loss, grad, layers)
    assert report.ok, report
    assert gp.check(loss, lambda p: [g * (1 + (k == 2)) for k, g in enumerate(grad(p))], layers).failing == ("2",)


def test_shadow_option_accepts_none_and_rejects_other_values():
    x = np.array([0.3, -1.2])
    assert gp.check(cube, lambda p: 3 * p**2, x, shadow=None).ok
    with pytest.raises(gp.InvalidArgument, match="`shadow` must be True, False or None"):
        gp.check(cube, lambda p: 3 * p**2, x, shadow=1)


def test_float16_points_never_leave_float16_range_without_shadow():
    # A flat loss (tanh saturated) in float16 near 1e3: noise tables retried at 100x larger spacings.
    x = np.array([1493.0, -824.0], dtype=np.float16)
    loss = lambda p: float(np.sum(np.exp(np.tanh(p.astype(np.float64)))))  # noqa: E731
    assert gp.check(loss, lambda p: np.zeros(2), x, shadow=False).status != "fail"


# -- losses with no derivative at this precision, and windows that stay rough -------------------------


def test_a_loss_that_jumps_between_neighbouring_floats_is_inconclusive_whatever_the_gradient():
    x = np.array([1e30, -3e30])  # neighbouring floats 1e14 apart: sin has no derivative to see
    loss = lambda p: float(np.sum(np.sin(p)))  # noqa: E731
    for grad in (np.cos, lambda p: 2 * np.cos(p), lambda p: np.zeros(2)):
        report = gp.check(loss, grad, x)
        assert (report.status, report.tensors["params"].reason) == ("inconclusive", "noise"), report
        assert report.resolution == np.inf
    assert any("no derivative to compare at this precision" in note for note in report.notes)


@pytest.mark.parametrize("magnitude", [1e4, 1e5, 1e6, 1e10])
def test_a_loss_varying_much_faster_than_its_parameters_scale_never_passes_a_wrong_gradient(magnitude):
    # sin at 1e5: the first steps span many periods; windows can stay rough down to the finest
    # step. Those elements are not judged, and their whole disagreement counts against the resolution.
    x = magnitude * np.array([1.786, 0.550])
    loss = lambda p: float(np.sum(np.sin(p)))  # noqa: E731
    assert gp.check(loss, np.cos, x).status != "fail"
    for wrong in (lambda p: 2 * np.cos(p), lambda p: np.cos(p) + 0.1):
        assert gp.check(loss, wrong, x).status != "pass"


@pytest.mark.parametrize("shadow", [None, False])
def test_a_subnormal_parameter_beside_float16_gets_an_infinite_error_bar_not_an_overflow(shadow):
    params = (np.array([3.6e-312, -1.07e-310]), np.array(0.9873, dtype=np.float16))
    loss = lambda p: float(np.sum(p[0] ** 3) + float(p[1]) ** 3)  # noqa: E731
    report = gp.check(loss, lambda p: (3 * p[0] ** 2, 3 * float(p[1]) ** 2), params, shadow=shadow)
    assert report.tensors["0"].status != "fail" and report.status != "fail"
    assert report.tensors["0"].counts["nonfinite"] == 0  # the loss was finite everywhere
    if shadow is None:
        assert report.tensors["1"].status == "pass"


# -- tensors the loss does not depend on ------------------------------------------------------------


def batchnorm_layer(dtype, seed=0):
    """Linear (W, b) then batch norm: the loss is invariant to b, whose gradient is exactly zero."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((16, 5)).astype(dtype), rng.standard_normal((16, 3)).astype(dtype)
    params = {"W": (rng.standard_normal((5, 3)) * 0.5).astype(dtype), "b": (rng.standard_normal(3) * 0.1).astype(dtype),
              "gamma": (1 + 0.1 * rng.standard_normal(3)).astype(dtype)}  # fmt: skip

    def forward(p):
        z = X @ p["W"] + p["b"]
        zc = z - z.mean(0)
        inv = 1 / np.sqrt((zc**2).mean(0) + dtype(1e-5))
        return zc * inv, inv

    def loss(p):
        return np.mean((np.tanh(p["gamma"] * forward(p)[0]) - y) ** 2)

    def grad(p):
        zh, inv = forward(p)
        o = np.tanh(p["gamma"] * zh)
        do = 2 * (o - y) * (1 - o**2) / o.size
        dzh = do * p["gamma"]
        dz = inv / 16 * (16 * dzh - dzh.sum(0) - zh * (dzh * zh).sum(0))
        return {"W": X.T @ dz, "b": dz.sum(0), "gamma": (do * zh).sum(0)}  # b: rounding residue, ~0

    return loss, grad, params


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_gradient_that_is_zero_where_the_loss_is_flat_passes_on_the_whole_gradients_scale(dtype):
    for seed in range(3):
        loss, grad, params = batchnorm_layer(dtype, seed)
        report = gp.check(loss, grad, params)
        b = report.tensors["b"]
        assert report.ok and b.counts["pass"] == 3, report
        assert b.resolution < (1e-2 if dtype == np.float32 else 1e-9)  # relative to the whole gradient
        wrong = gp.check(loss, lambda p: {**grad(p), "b": grad(p)["b"] + 1e-3}, params)
        assert wrong.failing == ("b",) and wrong.tensors["b"].diagnosis == "should be zero"


def test_a_tensor_whose_gradient_is_merely_small_keeps_its_own_scale():
    # w_small's gradient is 1e-8 of w_big's but measured clear of zero: a 1e-3 error in it is caught.
    rng = np.random.default_rng(0)
    a, b = 1e4 * (1 + rng.random(3)), 1e-4 * rng.standard_normal(3)
    params = {"big": 1e-4 * rng.standard_normal(3), "small": 1e4 * rng.standard_normal(3)}
    loss = lambda p: float(np.log1p(np.exp(a @ p["big"] + b @ p["small"])))  # noqa: E731

    def grad(p):
        s = 1 / (1 + np.exp(-(a @ p["big"] + b @ p["small"])))
        return {"big": s * a, "small": s * b}

    for dtype in (np.float32, np.float64):
        typed = {k: v.astype(dtype) for k, v in params.items()}
        assert gp.check(loss, grad, typed).ok
        wrong = gp.check(loss, lambda p: {**grad(p), "small": grad(p)["small"] * (1 + 1e-2)}, typed)
        assert wrong.failing == ("small",)


def test_an_unresolved_element_that_saw_a_kink_is_a_kink_not_noise():
    n = np.array([1.0, 1.0])
    base = estimates(n, 0.5)  # agrees, but within half the gradient: unresolved
    from dataclasses import replace

    kinked = replace(base, kinked=np.array([True, False]))
    assert [ELEMENT_STATUSES[c] for c in judge(kinked, np.ones(2), np.zeros(2)).codes] == ["kink", "noise"]
    rough = replace(estimates(n, 1e-8, jump=[1.0, 1.0], rough=True, at_point=False), kinked=np.array([True, False]))
    assert [ELEMENT_STATUSES[c] for c in judge(rough, np.ones(2), np.zeros(2)).codes] == ["kink", "noise"]


def test_an_unjudged_rough_element_counts_its_whole_disagreement_against_the_resolution():
    case = estimates(0.5, 1e-8, jump=0.1, rough=True, at_point=False, analytic=3.0)
    codes = judge(case, np.ones(1), np.zeros(1)).codes
    assert ELEMENT_STATUSES[codes[0]] == "noise"
    assert undetectable(case, codes, np.zeros(1))[0] >= 2.5


def test_a_tensor_left_unresolved_by_its_kinks_says_kink():
    assert tensor_status(np.array([PASS, KINK]), 0.4, kink_free=1e-8) == ("inconclusive", "kink")
    assert tensor_status(np.array([PASS, NOISE]), 0.4, kink_free=1e-8) == ("inconclusive", "noise")
    assert tensor_status(np.array([PASS, KINK]), 0.4, kink_free=0.3) == ("inconclusive", "noise")


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
    """The Taylor slope of a right gradient along a fixed direction, with the loss's measured noise."""
    from gradprobe.estimate._noise_model import FULL_NOISE, NoiseModel
    from gradprobe.estimate._objective import Objective
    from gradprobe.judge._taylor import taylor_slope
    from gradprobe.params._params import Params
    from gradprobe.strategies._analytic import analytic_gradient

    params = Params(x)
    analytic, _ = analytic_gradient(grad, params)
    objective = Objective(loss, params)
    f0 = objective.initial()
    noise = NoiseModel([])
    noise.measure(objective, analytic, f0, np.random.default_rng(0), FULL_NOISE)
    eps = float(np.finfo(np.float64).eps)
    return taylor_slope(objective, analytic, f0, noise.sigma, eps, np.linspace(1, 2, x.size), np.arange(x.size))


def test_the_plateau_count_starts_at_the_first_finite_value():
    # A worker's first points can all be off the loss's domain (NaN): nothing is counted until a
    # finite value comes, and a loss at the floor of its rounding reads as on a plateau.
    from gradprobe.estimate._objective import Objective
    from gradprobe.params._params import Params

    objective = Objective(lambda p: 0.0, Params(np.ones(2)))
    objective._seen(np.array([np.nan]))
    assert objective.first_value is None and not objective.on_a_plateau()
    objective._seen(np.array([4e-17, 4e-17, 4e-17, 1e-17]))
    assert (objective.finite_values, objective.same_values, objective.smallest_change) == (4, 3, 3e-17)
    assert objective.on_a_plateau()
    objective._seen(np.array([0.25, 0.5, 1.0, 2.0]))  # the loss moves at most points now
    assert not objective.on_a_plateau()
