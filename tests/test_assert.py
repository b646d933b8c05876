"""`assert_gradients`: silent on a right gradient, a readable `GradientMismatch` otherwise."""

import numpy as np
import pytest

import gradprobe as gp

X = np.array([1.0, 2.0, 3.0])


def cube(p):
    return float(np.sum(p**3))


def test_a_right_gradient_returns_the_report():
    report = gp.assert_gradients(cube, lambda p: 3 * p**2, X)
    assert isinstance(report, gp.Report) and report.ok


def test_a_wrong_gradient_raises_an_assertion_error_carrying_the_report():
    with pytest.raises(gp.GradientMismatch) as caught:
        gp.assert_gradients(cube, lambda p: 6 * p**2, X, seed=4)
    error = caught.value
    assert isinstance(error, AssertionError)
    assert error.report.status == "fail" and error.report.seed == 4
    message = str(error)
    assert message == str(error.report)
    assert message.startswith("gradprobe FAIL: 1 of 1 tensors wrong (params)")
    assert "2.00x" in message and "hint: params is exactly 2.00x" in message
    assert "reproduce: gp.check(loss, grad, params, strategy='full', method='richardson', seed=4)" in message


def test_inconclusive_fails_unless_allowed():
    def relu_sum(p):
        return float(np.sum(np.maximum(p, 0)))

    def step(p):
        return (p > 0).astype(float)

    with pytest.raises(gp.GradientMismatch, match="gradprobe INCONCLUSIVE"):
        gp.assert_gradients(relu_sum, step, np.zeros(3))
    report = gp.assert_gradients(relu_sum, step, np.zeros(3), allow_inconclusive=True)
    assert report.status == "inconclusive"


def test_options_are_checked_like_check_does():
    with pytest.raises(gp.InvalidArgument, match="`allow_inconclusive` must be True or False"):
        gp.assert_gradients(cube, lambda p: 3 * p**2, X, allow_inconclusive="yes")
    with pytest.raises(gp.InvalidArgument, match="`strategy` must be one of"):
        gp.assert_gradients(cube, lambda p: 3 * p**2, X, strategy="everything")


def test_the_helper_hides_itself_from_pytest_tracebacks():
    import inspect

    from gradprobe.strategies._assert import assert_gradients

    # (unwrapped: the test suite's no-mutation guard wraps every public function)
    assert "__tracebackhide__" in inspect.unwrap(assert_gradients).__code__.co_varnames
    # (tests/test_pytest_plugin.py shows the effect: the user's line, none of gradprobe's frames)
