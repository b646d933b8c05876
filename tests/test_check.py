"""gp.check over parameter structures, its report, and the promise never to mutate."""

from collections import namedtuple

import numpy as np
import pytest

import gradprobe as gp


def cube(p):
    return float(np.sum(np.asarray(p) ** 3))


def test_float_parameter():
    report = gp.check(lambda t: t**3, lambda t: 3 * t**2, 1.5)
    assert report.ok and list(report.tensors) == ["params"]


def test_zero_dimensional_array():
    report = gp.check(lambda t: float(t**3), lambda t: 3 * t**2, np.array(1.5))
    assert report.ok and report.tensors["params"].shape == ()


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 1, 3)])
def test_arrays_of_any_shape(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    assert gp.check(cube, lambda p: 3 * p**2, x).ok
    wrong = gp.check(cube, lambda p: -3 * p**2, x)
    assert wrong.status == "fail" and wrong.tensors["params"].diagnosis == "sign flipped"


def test_dict_of_arrays(quadratic):
    loss, grad, params = quadratic
    report = gp.check(loss, grad, params)
    assert report.ok and list(report.tensors) == ["x", "W"]
    assert report.tensors["W"].shape == (4, 4)


def test_nested_structures_are_named_by_path():
    Pair = namedtuple("Pair", "a b")
    params = {"enc": [np.ones(2), (np.full(3, 2.0), 0.5)], "dec": Pair(np.ones((2, 2)), np.zeros(1) + 0.3)}

    def flatten(p):
        return [p["enc"][0], p["enc"][1][0], np.atleast_1d(p["enc"][1][1]), p["dec"].a.ravel(), p["dec"].b]

    def loss(p):
        assert isinstance(p["dec"], Pair) and isinstance(p["enc"][1], tuple) and isinstance(p["enc"][1][1], float)
        return float(sum(np.sum(np.sin(v)) for v in flatten(p)))

    def grad(p):
        return {"enc": [np.cos(p["enc"][0]), (np.cos(p["enc"][1][0]), np.cos(p["enc"][1][1]))],
                "dec": Pair(np.cos(p["dec"].a), np.cos(p["dec"].b))}  # fmt: skip

    report = gp.check(loss, grad, params)
    assert report.ok
    assert list(report.tensors) == ["enc.0", "enc.1.0", "enc.1.1", "dec.0", "dec.1"]


def test_seed_style_gradient_names_and_extra_entries(quadratic):
    loss, grad, params = quadratic

    def course_style(p):
        g = grad(p)
        return {"dx": g["x"], "dW": g["W"], "dZ1": np.zeros(7), "cache": "anything"}

    report = gp.check(loss, course_style, params)
    assert report.ok
    assert report.ignored == ("dZ1", "cache")
    assert "ignored gradient entries with no parameter: dZ1, cache" in str(report)


def test_report_fields(quadratic):
    loss, grad, params = quadratic
    report = gp.check(loss, lambda p: {**grad(p), "W": 2 * grad(p)["W"]}, params)
    assert report.status == "fail" and not report.ok
    assert 0 < report.difference < 1 and report.nfev > 4 * 20
    assert 0 < report.resolution < 1e-6
    w = report.tensors["W"]
    assert (w.name, w.shape, w.status, w.diagnosis) == ("W", (4, 4), "fail", "2.00x")
    assert w.scale == pytest.approx(2.0, rel=1e-6)
    index, analytic, numeric = w.worst[0]
    assert analytic == pytest.approx(2 * numeric, rel=1e-6)
    assert index == max(np.ndindex(4, 4), key=lambda i: abs(np.outer(params["x"], params["x"])[i]))
    assert report.tensors["x"].ok and report.tensors["x"].difference < 1e-8
    data = report.to_dict()
    assert data["status"] == "fail" and data["tensors"][1]["worst"][0]["index"] == list(index)
    assert '"status": "fail"' in report.to_json()


def test_printed_report_is_compact():
    x = np.random.default_rng(2).standard_normal((40, 50))
    text = str(gp.check(cube, lambda p: 3 * p**2 * (1 + (p > 1)), x))
    assert "FAIL" in text and "at (" in text
    assert len(text.splitlines()) < 15  # one row per tensor and three worst elements, never the array


def test_same_seed_same_report(quadratic):
    loss, grad, params = quadratic
    assert gp.check(loss, grad, params, seed=3) == gp.check(loss, grad, params, seed=3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_dtype_is_preserved_and_verdicts_hold(dtype):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal(5).astype(dtype), "b": dtype(0.3)}
    seen = []

    def loss(p):
        seen.append((p["w"].dtype, type(p["b"])))
        return np.tanh(p["w"] * 1.3 + p["b"]).sum()

    def grad(p):
        s = 1 - np.tanh(p["w"] * 1.3 + p["b"]) ** 2
        return {"w": 1.3 * s, "b": s.sum()}

    # With shadow=False the loss sees the parameters' own dtype, and only that.
    native = gp.check(loss, grad, params, shadow=False)
    assert native.ok and native.reference == "native"
    assert set(seen) == {(np.dtype(dtype), dtype)}
    assert gp.check(loss, lambda p: {**grad(p), "b": 0.0}, params, shadow=False).failing == ("b",)
    # By default float32 parameters get a float64 reference; float64 ones are their own.
    seen.clear()
    default = gp.check(loss, grad, params)
    assert default.ok and default.reference == ("float64" if dtype == np.float32 else "native")
    assert set(seen) == {(np.dtype(np.float64), np.float64)}
    assert gp.check(loss, lambda p: {**grad(p), "b": 0.0}, params).failing == ("b",)


def _snapshot(tree):
    return {k: np.array(v, copy=True) for k, v in tree.items()}


def test_user_arrays_are_never_modified(quadratic):
    loss, grad, params = quadratic
    before = _snapshot(params)

    def mutating_loss(p):
        value = loss(p)
        p["x"] += 1.0  # a careless loss: it must not reach the user's arrays
        return value

    gp.check(mutating_loss, grad, params)
    assert all(np.array_equal(params[k], before[k]) for k in params)


def test_user_arrays_survive_a_loss_that_raises_midway(quadratic):
    loss, grad, params = quadratic
    before = _snapshot(params)
    calls = []

    def flaky(p):
        calls.append(1)
        if len(calls) > 30:
            raise RuntimeError("simulation diverged")
        return loss(p)

    with pytest.raises(gp.UserFunctionError, match="simulation diverged") as info:
        gp.check(flaky, grad, params)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert all(np.array_equal(params[k], before[k]) for k in params)
    assert all(v.flags.writeable for v in params.values())


def test_readonly_and_noncontiguous_inputs():
    base = np.arange(12.0).reshape(3, 4) / 10
    view = base[:, ::2]
    view.flags.writeable = False
    report = gp.check(cube, lambda p: 3 * p**2, view)
    assert report.ok and report.tensors["params"].shape == (3, 2)
