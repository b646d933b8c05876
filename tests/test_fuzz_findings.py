"""Regressions for the findings of the fuzz runs recorded in benchmarks/RESULTS.md (## Fuzzing, runs 3 and 4)."""

import numpy as np
import pytest

import gradprobe as gp


def cube(p):
    return float(np.sum(np.asarray(p, dtype=float) ** 3))


def cube_grad(p):
    return 3 * np.asarray(p, dtype=float) ** 2


def test_directional_on_a_loss_with_no_derivative_is_inconclusive():
    x = np.array([[5.4784674928581725e29], [-9.2085314494451872e29], [-1.8361059042552214e30]])
    report = gp.check(lambda p: float(np.sum(np.sin(p))), lambda p: np.cos(p), x, strategy="directional")
    assert report.status == "inconclusive"
    assert report.tensors["params"].diagnosis == "no derivative at this precision"


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_directional_defers_to_per_element_probes_of_a_whole_tensor(dtype):
    report = gp.check(cube, cube_grad, np.array(0.0, dtype=dtype), strategy="directional")
    assert report.status != "fail"
    wrong = gp.check(cube, lambda p: cube_grad(p) + 1.0, np.array(0.0, dtype=dtype), strategy="directional")
    assert wrong.status == "fail"


def test_directional_with_parameters_whose_norms_underflow():
    params = {"W0": [np.array([-8.777986858742715e-161, -3.945528467623913e-161])], "W1": -1.25}

    def loss(p):
        return cube(p["W0"][0]) + p["W1"] ** 3

    def grad(p):
        return {"W0": [cube_grad(p["W0"][0])], "W1": 3 * p["W1"] ** 2}

    report = gp.check(loss, grad, params, strategy="directional")
    assert report.tensors["W1"].status == "pass"


def test_gradient_list_shorter_than_an_int_keyed_dict():
    with pytest.raises(gp.InvalidArgument, match="returned 1 entries at `top level`.*entry `1`") as info:
        gp.check(lambda p: p[1] ** 3, lambda p: [0.75], {1: 0.5})
    assert info.value.argument == "grad"


def test_directional_with_thresholds_near_the_float_range():
    # Fuzz run 4: parameters near 1e-161 make a tensor's guarantee threshold so large that the
    # resolution's exp() overflowed. Such a tensor states no relative guarantee (infinite).
    params = ([[3.0, np.array([-3.6381089249152064e-162, 7.4541856480931125e-161])]],)

    def loss(p):
        return float(sum(np.sum(np.log1p(np.asarray(x, dtype=float) ** 2)) for x in p[0][0]))

    def grad(p):
        return ([[2 * x / (1 + x * x) for x in (np.asarray(v, dtype=float) for v in p[0][0])]],)

    report = gp.check(loss, grad, params, strategy="directional")
    assert report.status != "fail"
    assert report.guarantee is not None


def test_directional_on_a_loss_flat_at_every_step_does_not_divide_by_its_zero_resolution():
    # Fuzz run 7: tanh at -1e30 and 1.7e29 (float32) is flat to the last bit, its gradient exactly 0 at
    # both; the tensor's resolution came out 0 and stating it on the whole gradient's scale divided by it.
    x = np.array([-1.0375671e30, 1.6849001e29], dtype=np.float32)

    def loss(p):
        return float(np.sum(np.tanh(np.asarray(p, dtype=float))))

    def grad(p):
        return 1 - np.tanh(np.asarray(p, dtype=float)) ** 2

    report = gp.check(loss, grad, x, method="central", strategy="directional")
    assert report.status != "fail", report
    wrong = gp.check(loss, lambda p: grad(p) + 1.0, x, method="central", strategy="directional")
    assert wrong.status == "fail", wrong
