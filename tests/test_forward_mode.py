"""``mode="forward"`` checks forward-mode rules (a torch ``Function.jvp``, a ``jax.custom_jvp``)
against numerical derivatives; ``mode="both"`` checks them and the backward, naming the one that
fails; ``oracle="forward"`` refuses to take its reference from the user's own jvp rules."""

import numpy as np
import pytest

import gradprobe as gp

torch = pytest.importorskip("torch")


def square(jvp_factor=2.0, backward_factor=2.0):
    """``x**2`` as a Function with a backward and a jvp, each with its own factor (2 is right)."""

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x**2

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)
            ctx.x = x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return backward_factor * x * g

        @staticmethod
        def jvp(ctx, t):
            return jvp_factor * ctx.x * t

    return Square.apply


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_wrong_jvp_is_caught_in_forward_mode_and_blamed_on_it(dtype):
    x = torch.randn(6, dtype=dtype, generator=torch.Generator().manual_seed(0)).requires_grad_()
    wrong_jvp = square(jvp_factor=1.0)
    assert gp.torch.check(wrong_jvp, x).status == "pass"  # the backward is right
    forward = gp.torch.check(wrong_jvp, x, mode="forward")
    assert forward.failing == ("input0",) and forward.mode == "forward", forward
    assert forward.tensors["input0"].diagnosis == "0.50x" and "mode forward (jvp)" in str(forward)
    both = gp.torch.check(wrong_jvp, x, mode="both")
    assert both.status == "fail" and both.mode == "forward" and "order 1 (the backward): pass" in both.notes[0]
    assert gp.torch.check(square(), x, mode="both").status == "pass"


def test_both_modes_blame_a_wrong_backward_on_the_backward():
    x = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
    both = gp.torch.check(square(backward_factor=1.0), x, mode="both")
    assert both.status == "fail" and both.mode == "reverse" and "forward mode (jvp): pass" in both.notes[0], both
    assert both.reproduce.endswith("mode='both', seed=0)")


def test_the_forward_oracle_blames_neither_side_when_it_ran_the_users_own_jvp():
    # Once "0.50x: look for a dropped term" about a right backward whose jvp was wrong.
    x = torch.randn(3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    wrong_jvp = gp.torch.check(square(jvp_factor=1.0), x, oracle="forward")
    tensor = wrong_jvp.tensors["input0"]
    assert tensor.status == "fail" and tensor.finding.against == "jvp", wrong_jvp
    assert tensor.diagnosis == "2.00x, backward or jvp wrong" and "one of them is wrong" in tensor.hint
    agree = gp.torch.check(square(), x, oracle="forward")
    assert agree.status == "pass" and "ran your own jvp rules (Square)" in agree.notes[0]
    plain = gp.torch.check(torch.sin, x, oracle="forward")  # torch's own rules are a reference
    assert plain.status == "pass" and not any("own jvp" in note for note in plain.notes)


def test_forward_mode_of_a_module_and_without_a_jvp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    report = gp.torch.check_module(net, torch.nn.MSELoss(), torch.randn(5, 3), torch.randn(5, 2), mode="forward")
    assert report.status == "pass" and report.mode == "forward", report

    class NoJvp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def backward(ctx, g):
            return 3 * g

    with pytest.raises(gp.InvalidArgument, match="`mode`='forward' needs forward-mode AD") as error:
        gp.torch.check(NoJvp.apply, torch.randn(3, dtype=torch.float64).requires_grad_(), mode="forward")
    assert error.value.argument == "mode"


@pytest.mark.parametrize(
    ("options", "argument"),
    [({"mode": "sideways"}, "mode"), ({"mode": "forward", "order": 2}, "mode"),
     ({"mode": "forward", "oracle": "forward"}, "oracle")],
)  # fmt: skip
def test_bad_modes_are_argument_errors(options, argument):
    x = torch.randn(3, dtype=torch.float64).requires_grad_()
    with pytest.raises(gp.InvalidArgument) as error:
        gp.torch.check(torch.sin, x, **options)
    assert error.value.argument == argument


@pytest.mark.slow
def test_jax_custom_jvp_rules_in_forward_mode():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def softplus(factor):
        @jax.custom_jvp
        def f(x):
            return jnp.logaddexp(x, 0.0)

        @f.defjvp
        def rule(primals, tangents):
            return f(primals[0]), factor * jax.nn.sigmoid(primals[0]) * tangents[0]

        return f

    x = jnp.asarray(np.random.default_rng(0).standard_normal(6), dtype=jnp.float32)
    assert gp.jax.check(softplus(1.0), x, mode="both").status == "pass"
    wrong = gp.jax.check(softplus(0.5), x, mode="forward")
    assert wrong.failing == ("x",) and wrong.tensors["x"].diagnosis == "0.50x" and wrong.mode == "forward"
    # float32 primals get float64 unit tangents in the float64 run: once they stayed float32, the
    # run raised, and a note blamed `fn` for it and left a 1.0005x rule to float32's allowance (a PASS).
    slight = gp.jax.check(softplus(1.0005), x, mode="forward")
    assert slight.failing == ("x",) and slight.tensors["x"].diagnosis == "1.0005x", slight
    assert not any("could not run in float64" in note for note in slight.notes), slight.notes
    with pytest.raises(gp.InvalidArgument, match=r"own forward-mode rules \(f\)"):
        gp.jax.check(softplus(0.5), x, oracle="forward")  # once a false PASS: the rule was its own reference
    # JAX's own custom_jvp rules (relu, logaddexp) are no reason to refuse the oracle.
    assert gp.jax.check(lambda x: jnp.sum(jax.nn.relu(x) + jnp.logaddexp(x, 1.0)), x, oracle="forward").status == "pass"
