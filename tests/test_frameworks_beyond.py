"""The cases of benchmarks/frameworks/beyond.py plant what they claim, judged by the frameworks'
own checkers only (no gradprobe check is run here), and the benchmark scores blame as it says."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install gradprobe[torch])")
jax = pytest.importorskip("jax", reason="JAX is not installed (pip install gradprobe[jax])")
jnp = pytest.importorskip("jax.numpy")

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `benchmarks` is a package at the repository root
    sys.path.insert(0, _ROOT)

from jax.test_util import check_grads
from torch.autograd import gradcheck, gradgradcheck
from torch.autograd.gradcheck import GradcheckError

from benchmarks.frameworks import beyond, beyond_ops


def _passes(check, *args, **kwargs) -> bool:
    with warnings.catch_warnings():
        # gradcheck(check_forward_ad=True) calls the deprecated torch.jit.script; not ours to fix.
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        try:
            check(*args, **kwargs)
            return True
        except (GradcheckError, AssertionError):
            return False


def _ids(cases):
    return [f"{c.op}-{c.variant}" for c in cases]


def _moved(inputs, seed: int = 1):
    """The inputs moved to a generic point (no symmetry, no zero bias), as fresh leaves."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(
        (t.detach() + 0.3 * torch.randn(t.shape, generator=generator, dtype=torch.float64)).requires_grad_()
        for t in inputs
    )


# -- torch: every case in float64 -------------------------------------------------------------------


@pytest.mark.parametrize("case", beyond_ops.second_order_torch(), ids=_ids(beyond_ops.second_order_torch()))
def test_torch_second_order_cases_are_right_at_order_one_and_wrong_only_at_two(case):
    inputs = case.make_inputs(torch.float64)
    assert _passes(gradcheck, case.fn, inputs)
    assert _passes(gradgradcheck, case.fn, inputs) == case.correct


@pytest.mark.parametrize("case", beyond_ops.forward_mode_torch(), ids=_ids(beyond_ops.forward_mode_torch()))
def test_torch_forward_mode_cases_are_wrong_in_the_rule_they_say(case):
    inputs = case.make_inputs(torch.float64)
    backward_right = _passes(gradcheck, case.fn, inputs)
    both_right = _passes(gradcheck, case.fn, inputs, check_forward_ad=True)
    assert backward_right == ("backward" not in case.derivative)
    assert both_right == case.correct


@pytest.mark.parametrize("case", beyond_ops.nearby_torch(), ids=_ids(beyond_ops.nearby_torch()))
def test_torch_hidden_bugs_are_hidden_at_the_point_and_show_nearby(case):
    inputs = case.make_inputs(torch.float64)
    assert _passes(gradcheck, case.fn, inputs)
    assert _passes(gradcheck, case.fn, _moved(inputs)) == case.correct


def test_the_hidden_bugs_points_are_special():
    x, W = beyond_ops.nearby_torch()[0].make_inputs(torch.float64)
    assert torch.allclose(x.T @ x, torch.eye(3, dtype=torch.float64)) and torch.equal(W, W.T)
    *_, b = beyond_ops.nearby_torch()[2].make_inputs(torch.float64)
    assert not b.any()


@pytest.mark.parametrize("case", beyond_ops.complex_torch(), ids=_ids(beyond_ops.complex_torch()))
def test_torch_complex_cases(case):
    inputs = case.make_inputs(torch.float64)
    assert all(t.dtype == torch.complex128 for t in inputs)
    assert _passes(gradcheck, case.fn, inputs) == case.correct


# -- JAX: every case in float64 ---------------------------------------------------------------------


def _vjp_along(fn, cotangent_seed: int = 5):
    """x -> the VJP of `fn` at x along a fixed random cotangent: its derivative is the double
    backward. (check_grads' own order 2 takes the output as the cotangent, which is orthogonal to
    the row normalisation's Jacobian: it cannot see that op's double backward.)"""

    def along(*args):
        out, vjp = jax.vjp(fn, *args)
        cotangent = jnp.asarray(np.random.default_rng(cotangent_seed).standard_normal(out.shape), out.dtype)
        return vjp(cotangent)

    return along


@pytest.mark.slow
@pytest.mark.parametrize("case", beyond_ops.second_order_jax(), ids=_ids(beyond_ops.second_order_jax()))
def test_jax_second_order_cases_are_right_at_order_one_and_wrong_only_at_two(case):
    with jax.enable_x64(True):
        args = case.make_inputs(jnp.float64)
        assert _passes(check_grads, case.fn, args, order=1, modes=("rev",))
        assert _passes(check_grads, _vjp_along(case.fn), args, order=1, modes=("rev",)) == case.correct


@pytest.mark.slow
@pytest.mark.parametrize("case", beyond_ops.forward_mode_jax(), ids=_ids(beyond_ops.forward_mode_jax()))
def test_jax_forward_mode_cases(case):
    with jax.enable_x64(True):
        args = case.make_inputs(jnp.float64)
        assert _passes(check_grads, case.fn, args, order=1, modes=("fwd",)) == case.correct
        assert _passes(check_grads, case.fn, args, order=1, modes=("rev",)) == case.correct


@pytest.mark.slow
@pytest.mark.parametrize("case", beyond_ops.nearby_jax(), ids=_ids(beyond_ops.nearby_jax()))
def test_jax_hidden_bugs_are_hidden_at_the_point_and_show_nearby(case):
    with jax.enable_x64(True):
        args = case.make_inputs(jnp.float64)
        rng = np.random.default_rng(1)
        moved = tuple(a + 0.3 * rng.standard_normal(a.shape) for a in args)
        assert _passes(check_grads, case.fn, args, order=1, modes=("rev",))
        assert _passes(check_grads, case.fn, moved, order=1, modes=("rev",)) == case.correct


@pytest.mark.slow
@pytest.mark.parametrize("case", beyond_ops.complex_jax(), ids=_ids(beyond_ops.complex_jax()))
def test_jax_complex_cases(case):
    with jax.enable_x64(True):
        args = case.make_inputs(jnp.float64)
        assert all(a.dtype == jnp.complex128 for a in args)
        assert _passes(check_grads, case.fn, args, order=1, modes=("rev",)) == case.correct


# -- the benchmark's scoring ------------------------------------------------------------------------


def _tool(names_every_input: bool) -> beyond.Tool:
    return beyond.Tool("t", lambda case, dtype: None, names_every_input)


def test_blame_is_right_for_the_first_culprit_only_from_a_tool_that_names_one():
    tanh_layer = next(c for c in beyond_ops.second_order_torch() if c.op == "tanh layer" and not c.correct)
    first = beyond.Said("FAIL", (0,), derivative="double backward")
    every = beyond.Said("FAIL", (0, 1, 2), derivative="double backward")
    assert beyond._blame_right(_tool(False), tanh_layer, first)
    assert not beyond._blame_right(_tool(True), tanh_layer, first)
    assert beyond._blame_right(_tool(True), tanh_layer, every)
    assert not beyond._blame_right(_tool(True), tanh_layer, beyond.Said("FAIL", (0, 1, 2), derivative="backward"))


def test_a_jax_custom_jvp_rule_may_be_blamed_in_either_mode():
    wrong_rule = next(c for c in beyond_ops.forward_mode_jax() if not c.correct)
    for derivative in ("jvp", "backward", "jvp, backward"):
        assert beyond._blame_right(_tool(True), wrong_rule, beyond.Said("FAIL", (0,), derivative=derivative))
    assert not beyond._blame_right(_tool(True), wrong_rule, beyond.Said("FAIL", (0,), derivative="double backward"))


def test_cells():
    correct, detached = beyond_ops.second_order_torch()[:2]
    scored, control = _tool(True), beyond.Tool("c", lambda case, dtype: None, scored=False)
    caught = beyond.Said("FAIL", (0,), derivative="double backward")
    assert beyond._cell(scored, detached, caught) == "caught (x; double backward)"
    assert beyond._cell(scored, correct, caught) == "**FALSE ALARM** (x; double backward)"
    assert beyond._cell(scored, detached, beyond.Said("pass")) == "**missed**"
    assert beyond._cell(control, detached, beyond.Said("pass")) == "pass"
    assert beyond._both_dtypes("pass", "pass") == "pass"
    assert beyond._both_dtypes("pass", "**missed**") == "64: pass; 32: **missed**"
