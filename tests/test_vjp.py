"""check_vjp, check_jacobian and the exact-derivative oracle of gp.check."""

import numpy as np
import pytest

import gradprobe as gp

A = np.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]])
X = np.array([0.3, -0.7, 1.1])


def f(x):
    return A @ np.tanh(x)


def vjp(x, v):
    return (1 - np.tanh(x) ** 2) * (A.T @ v)


def jac(x):
    return A * (1 - np.tanh(x) ** 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_vjp_right_passes_and_wrong_fails(dtype):
    x = X.astype(dtype)
    seen = []

    def recording_vjp(x, v):
        seen.append(np.asarray(v).dtype)
        return vjp(x, v)

    assert gp.check_vjp(lambda x: f(x).astype(dtype), recording_vjp, x).status == "pass"
    assert seen and all(d == dtype for d in seen)  # the cotangent comes in the output's dtype
    wrong = gp.check_vjp(lambda x: f(x).astype(dtype), lambda x, v: 2 * vjp(x, v), x)
    assert wrong.status == "fail" and wrong.tensors["x"].diagnosis == "2.00x"


def test_the_report_names_the_cotangent():
    report = gp.check_vjp(f, vjp, X, seed=3)
    assert any("random Gaussian cotangent" in note and "seed 3" in note for note in report.notes)
    assert "cotangent" in str(report)


def test_a_scalar_output_is_checked_as_the_gradient_itself():
    report = gp.check_vjp(lambda x: float(np.sum(x**2)), lambda x, v: 2 * x * v, X)
    assert report.ok and not report.notes
    assert np.allclose(report.tensors["x"].analytic, 2 * X)


def test_structured_inputs_and_outputs():
    def g(p):
        return {"y": p["W"] @ p["b"], "z": (np.sin(p["b"]), p["W"].sum())}

    def g_vjp(p, v):
        return {"W": np.outer(v["y"], p["b"]) + v["z"][1], "b": p["W"].T @ v["y"] + np.cos(p["b"]) * v["z"][0]}

    params = {"W": np.arange(6.0).reshape(2, 3) / 5, "b": np.array([0.1, -0.4, 0.9])}
    assert gp.check_vjp(g, g_vjp, params).ok
    report = gp.check_vjp(g, lambda p, v: {**g_vjp(p, v), "b": p["W"].T @ v["y"]}, params)
    assert report.failing == ("b",)


def test_the_cotangent_depends_on_the_seed_only():
    def first_cotangent(seed):
        seen = []
        gp.check_vjp(f, lambda x, v: seen.append(np.array(v)) or vjp(x, v), X, seed=seed)
        return seen[0]

    assert np.array_equal(first_cotangent(1), first_cotangent(1))
    assert not np.array_equal(first_cotangent(1), first_cotangent(2))


def test_jacobian_right_and_transposed():
    assert gp.check_jacobian(f, jac, X).ok
    square = np.array([[2.0, 1.0], [-1.0, 3.0]])
    report = gp.check_jacobian(lambda x: square @ x**2, lambda x: (square * 2 * x).T, np.array([0.4, -1.2]))
    assert report.status == "fail"


def test_jacobian_input_validation():
    with pytest.raises(gp.InvalidArgument, match=r"`jac` returned shape \(3, 2\); expected .*\(2, 3\)") as error:
        gp.check_jacobian(f, lambda x: jac(x).T, X)
    assert error.value.argument == "jac"
    with pytest.raises(gp.InvalidArgument, match="must be one array or float") as error:
        gp.check_jacobian(f, jac, {"x": X})
    assert error.value.argument == "x"
    with pytest.raises(gp.InvalidArgument, match="`jac` must be callable"):
        gp.check_jacobian(f, "jac", X)


def test_vjp_input_validation():
    with pytest.raises(gp.InvalidArgument, match="`vjp` must be callable"):
        gp.check_vjp(f, None, X)
    with pytest.raises(gp.UserFunctionError, match="`f` raised ZeroDivisionError"):
        gp.check_vjp(lambda x: 1 / 0, vjp, X)
    with pytest.raises(gp.InvalidArgument, match="return float or complex64/complex128 arrays"):
        gp.check_vjp(lambda x: "text", vjp, X)


def test_an_output_whose_shape_changes_is_refused():
    calls = []

    def shifty(x):
        calls.append(1)
        return f(x) if len(calls) < 4 else np.append(f(x), 0.0)

    with pytest.raises(gp.GradprobeError, match="must not depend on the point"):
        gp.check_vjp(shifty, vjp, X)


# -- the exact-derivative oracle ------------------------------------------------------------------


def cube(p):
    return float(np.sum(p**3))


def cube_jvp(p, t):
    return float(np.sum(3 * p**2 * t))


def test_oracle_replaces_finite_differences():
    report = gp.check(cube, lambda p: 3 * p**2, X, oracle=cube_jvp)
    assert report.ok and report.method == "forward"
    assert report.resolution < 1e-12


def test_oracle_resolves_errors_finite_differences_cannot():
    def loss(p):
        return float(np.sum(np.exp(np.sin(p))))

    def grad(p):
        return np.cos(p) * np.exp(np.sin(p))

    def jvp(p, t):
        return float(np.sum(grad(p) * t))

    slightly_off = lambda p: grad(p) * (1 + 1e-12)  # noqa: E731
    differences = gp.check(loss, slightly_off, X)
    exact = gp.check(loss, slightly_off, X, oracle=jvp)
    assert exact.status == "fail"
    assert exact.resolution < 1e-12 < differences.resolution


def test_oracle_jitter_widens_the_error_bars():
    rng = np.random.default_rng(0)
    noisy = lambda p, t: cube_jvp(p, t) * (1 + 1e-9 * rng.standard_normal())  # noqa: E731
    assert gp.check(cube, lambda p: 3 * p**2, X, oracle=noisy).status == "pass"


def test_oracle_validation():
    with pytest.raises(gp.InvalidArgument, match="`method` must stay 'auto'"):
        gp.check(cube, lambda p: 3 * p**2, X, oracle=cube_jvp, method="central")
    with pytest.raises(gp.InvalidArgument, match="`oracle` must be None or a callable"):
        gp.check(cube, lambda p: 3 * p**2, X, oracle="forward")
    with pytest.raises(gp.UserFunctionError, match="`oracle` raised KeyError on a tangent of `params`"):
        gp.check(cube, lambda p: 3 * p**2, X, oracle=lambda p, t: {}["x"])
