"""The deeplearning.ai assignment: published numbers and gradprobe's verdicts on it."""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.examples import deeplearning_ai as dla


@pytest.fixture
def network():
    return dla.gradient_check_n_test_case()


def test_one_dimensional_check_reproduces_published_number(capsys):
    difference = dla.gradient_check(2, 4)
    assert difference == 2.919335883291695e-10
    assert capsys.readouterr().out == "The gradient is correct!\n"


def test_buggy_network_reproduces_published_number(network, capsys):
    x, y, parameters = network
    _, cache = dla.forward_propagation_n(x, y, parameters)
    difference = dla.gradient_check_n(parameters, dla.backward_propagation_n(x, y, cache), x, y)
    assert np.isclose(difference, 0.2850931567761623)
    assert "There is a mistake in the backward propagation!" in capsys.readouterr().out


def test_fixed_network_reproduces_published_number(network, capsys):
    x, y, parameters = network
    _, cache = dla.forward_propagation_n(x, y, parameters)
    difference = dla.gradient_check_n(parameters, dla.backward_propagation_n_fixed(x, y, cache), x, y)
    assert np.isclose(difference, 1.1890913024229996e-07)
    # The course's own rule calls its fixed network wrong: the false alarm gradprobe avoids.
    assert "There is a mistake" in capsys.readouterr().out


def test_test_case_draws_in_course_order(network):
    x, y, parameters = network
    np.random.seed(1)
    assert np.array_equal(x, np.random.randn(4, 3))
    for key in ["W1", "b1", "W2", "b2", "W3", "b3"]:
        assert np.array_equal(parameters[key], np.random.randn(*dla.SHAPES[key]))
    assert y.tolist() == [1, 1, 0]
    assert sum(p.size for p in parameters.values()) == 47


def test_vectors_round_trip_for_any_shapes():
    shapes = {"W1": (2, 7), "b1": (2, 1), "W2": (1, 2)}
    parameters = {k: np.random.default_rng(0).standard_normal(s) for k, s in shapes.items()}
    theta, keys = dla.dictionary_to_vector(parameters)
    assert theta.shape == (18, 1) and keys[:14] == ["W1"] * 14
    back = dla.vector_to_dictionary(theta, shapes)
    assert all(np.array_equal(back[k], parameters[k]) for k in shapes)
    with pytest.raises(ValueError, match="need 18"):
        dla.vector_to_dictionary(np.zeros(5), shapes)


def test_gradients_to_vector_uses_course_order(network):
    x, y, parameters = network
    _, cache = dla.forward_propagation_n(x, y, parameters)
    gradients = dla.backward_propagation_n_fixed(x, y, cache)
    vector = dla.gradients_to_vector(gradients)
    assert vector.shape == (47, 1)
    assert np.array_equal(vector[:20, 0], gradients["dW1"].ravel())


def test_gradprobe_blames_exactly_w2_and_b1(network):
    x, y, parameters = network
    report = gp.check(*dla.loss_and_grad(x, y, dla.backward_propagation_n), parameters)
    assert report.status == "fail"
    assert set(report.failing) == {"W2", "b1"}
    assert {n for n, t in report.tensors.items() if t.status == "pass"} == {"W1", "b2", "W3", "b3"}
    assert report.tensors["W2"].scale == pytest.approx(2.0, rel=1e-6)
    assert report.tensors["b1"].scale == pytest.approx(4.0, rel=1e-6)
    assert report.tensors["W2"].diagnosis == "2.00x"
    assert report.tensors["b1"].diagnosis == "4.00x"
    assert np.isclose(report.difference, 0.2850931567761623, rtol=1e-6)


def test_gradprobe_passes_the_fixed_network(network):
    x, y, parameters = network
    report = gp.check(*dla.loss_and_grad(x, y, dla.backward_propagation_n_fixed), parameters)
    assert report.ok, str(report)
    assert report.resolution < 1e-6
    assert set(report.ignored) == {"dZ3", "dA2", "dZ2", "dA1", "dZ1"}


def test_gradprobe_passes_one_dimensional_case():
    report = gp.check(lambda t: dla.forward_propagation(2, t), lambda t: dla.backward_propagation(2, t), 4)
    assert report.ok and report.tensors["params"].shape == ()
