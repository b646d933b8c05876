"""Second and higher orders (``order=k``), functions that call autograd, and `check_hvp`.

Order k + 1 is checked as the gradient of ``<w, gradient of order k>``: a backward that builds no
graph has a zero double backward (FAIL "all zeros"), one whose derivative is off by a factor is
named with it, and the report says which order failed.
"""

import numpy as np
import pytest

import gradprobe as gp

torch = pytest.importorskip("torch")


def softplus_function(backward_factor):
    """A softplus `autograd.Function` whose backward is `backward_factor(sigmoid(x))`."""

    class Softplus(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.nn.functional.softplus(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * backward_factor(torch.sigmoid(x))

    return Softplus.apply


RIGHT = softplus_function(lambda s: s)
DETACHED = softplus_function(lambda s: s.detach())
# Right values, but a derivative 1.5x too large: s + (s - s.detach()) / 2.
STEEP = softplus_function(lambda s: s + (s - s.detach()) / 2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_detached_double_backward_fails_at_order_2_only(dtype):
    x = torch.randn(6, dtype=dtype, generator=torch.Generator().manual_seed(0)).requires_grad_()
    assert gp.torch.check(DETACHED, x).status == "pass"  # what gradcheck also says
    report = gp.torch.check(DETACHED, x, order=2)
    assert report.status == "fail" and report.tensors["input0"].diagnosis == "all zeros", report
    assert report.order == 2 and "order 1 (the backward): pass" in report.notes[0]
    assert "order 2, " in str(report).splitlines()[1]  # the facts line names the order
    assert report.reproduce.endswith("order=2, seed=0)")
    right = gp.torch.check(RIGHT, x, order=2)
    assert right.status == "pass", right
    assert right.nfev > gp.torch.check(RIGHT, x).nfev  # both orders were checked


def test_a_double_backward_off_by_a_factor_is_named_with_it():
    x = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
    assert gp.torch.check(STEEP, x).status == "pass"
    report = gp.torch.check(STEEP, x, order=2)
    assert report.failing == ("input0",) and report.tensors["input0"].diagnosis == "1.50x", report


def test_the_lowest_failing_order_is_the_one_reported():
    wrong_first = softplus_function(lambda s: 2 * s)
    x = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    report = gp.torch.check(wrong_first, x, order=2)
    assert report.tensors["input0"].diagnosis == "2.00x" and report.order == 1
    assert "order 2 (double backward): pass" in report.notes[0]


def test_order_3_of_a_module():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    report = gp.torch.check_module(net, torch.nn.MSELoss(), x, y, order=3)
    assert report.status == "pass" and report.order == 3, report
    assert "checked order 1 (the backward), order 2 (double backward), order 3;" in report.notes[0]
    assert all(torch.equal(p, before[name]) and p.grad is None for name, p in net.named_parameters())


def test_once_differentiable_is_refused_before_any_work():
    from torch.autograd.function import once_differentiable

    calls = []

    class Once(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            calls.append(1)
            ctx.save_for_backward(x)
            return x.exp()

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x.exp()

    x = torch.randn(3, dtype=torch.float64).requires_grad_()
    with pytest.raises(gp.InvalidArgument, match="once_differentiable") as error:
        gp.torch.check(Once.apply, x, order=2)
    assert error.value.argument == "order" and len(calls) <= 3  # the setup's calls, no check's
    assert gp.torch.check(Once.apply, x).status == "pass"


@pytest.mark.parametrize("order", [0, 5, 1.5, True, "2"])
def test_a_bad_order_is_an_argument_error(order):
    x = torch.randn(3, dtype=torch.float64).requires_grad_()
    with pytest.raises(gp.InvalidArgument, match="`order` must be an integer from 1 to 4") as error:
        gp.torch.check(torch.sin, x, order=order)
    assert error.value.argument == "order"


def test_order_2_with_the_forward_oracle_is_refused():
    x = torch.randn(3, dtype=torch.float64).requires_grad_()
    with pytest.raises(gp.InvalidArgument, match="oracle='differences'"):
        gp.torch.check(torch.sin, x, order=2, oracle="forward")


# -- functions that call autograd ------------------------------------------------------------------


def test_a_gradient_penalty_is_checked_to_second_order():
    data = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def penalty(W):
        x = data.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.tanh(x @ W.T).sum(), x, create_graph=True)
        return (g.norm(dim=1) - 1).pow(2).mean()

    W = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_()
    assert gp.torch.check(penalty, W).status == "pass"
    assert gp.torch.check(penalty, W, order=2).status == "pass"

    def detached_penalty(W):  # the penalty's gradient path cut: its gradient with respect to W is lost
        x = data.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.tanh(x @ W.T).sum(), x, create_graph=False)
        return (g.norm(dim=1) - 1).pow(2).mean() + (W**2).sum()

    report = gp.torch.check(detached_penalty, W)
    assert report.failing == ("W",), report


def test_a_hessian_vector_product_wrapper_is_checked():
    v = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def hvp_contracted(x):
        (g,) = torch.autograd.grad((x**3).sum(), x, create_graph=True)
        return (g * v).sum()

    x = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(6)).requires_grad_()
    assert gp.torch.check(hvp_contracted, x).status == "pass"
    assert x.grad is None


# -- JAX -------------------------------------------------------------------------------------------


def jax_softplus(bwd_factor):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.custom_vjp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * bwd_factor(jax.nn.sigmoid(x)),))
    return softplus


@pytest.mark.slow
def test_jax_second_order_of_a_custom_vjp():
    jax = pytest.importorskip("jax")
    x = jax.numpy.asarray(np.random.default_rng(0).standard_normal(6), dtype=jax.numpy.float32)
    assert gp.jax.check(jax_softplus(lambda s: s), x, order=2).status == "pass"
    stopped = gp.jax.check(jax_softplus(jax.lax.stop_gradient), x, order=2)
    assert stopped.failing == ("x",) and stopped.tensors["x"].diagnosis == "all zeros", stopped
    assert gp.jax.check(jax_softplus(jax.lax.stop_gradient), x).status == "pass"
    with pytest.raises(gp.InvalidArgument, match="`order`"):
        gp.jax.check(jax.numpy.sin, x, order=0)


# -- numpy: check_hvp ------------------------------------------------------------------------------


def test_check_hvp_names_a_wrong_hessian_vector_product():
    rng = np.random.default_rng(7)
    params = {"W": rng.standard_normal((3, 3)), "b": rng.standard_normal(3)}
    grad = lambda p: {"W": 2 * p["W"], "b": 3 * p["b"] ** 2}  # of sum(W**2) + sum(b**3)  # noqa: E731
    right = lambda p, v: {"W": 2 * v["W"], "b": 6 * p["b"] * v["b"]}  # noqa: E731
    halved = lambda p, v: {"W": 2 * v["W"], "b": 3 * p["b"] * v["b"]}  # noqa: E731
    assert gp.check_hvp(grad, right, params).status == "pass"
    report = gp.check_hvp(grad, halved, params)
    assert report.failing == ("b",) and report.tensors["b"].diagnosis == "0.50x", report
    assert "<v, grad(params)>" in report.notes[0] and report.reproduce.startswith("gp.check_hvp(grad, hvp, params")
    with pytest.raises(gp.InvalidArgument, match="`hvp` must be callable"):
        gp.check_hvp(grad, None, params)
