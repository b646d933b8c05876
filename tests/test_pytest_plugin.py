"""The pytest plugin: `--gradprobe-seed`, the `gradprobe` fixture, and what a failing test prints."""

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow  # every test runs pytest in a subprocess

USER_TEST = '''
import numpy as np
import gradprobe as gp


def loss(p):
    return float(np.sum(p["W"] ** 3) + np.sum(p["b"]))


def grad(p):
    return {"dW": 6 * p["W"] ** 2, "db": np.ones_like(p["b"])}  # dW: 6 where 3 belongs


PARAMS = {"W": np.arange(1.0, 7.0).reshape(2, 3), "b": np.zeros(2)}


def test_with_the_fixture(gradprobe):
    gradprobe.assert_gradients(loss, grad, PARAMS)


def test_with_the_function():
    gp.assert_gradients(loss, grad, PARAMS, seed=3)
'''


def test_a_failing_user_test_prints_the_diagnosis(pytester):
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*gradprobe.assert_gradients(loss, grad, PARAMS)*",
            "E *GradientMismatch: gradprobe FAIL: 1 of 2 tensors wrong (W)",
            "E * W * FAIL * 2.00x",
            "E * hint: W is exactly 2.00x the numerical gradient*",
            "E * reproduce: gp.check(loss, grad, params, strategy='full', method='richardson', seed=0)",
            "*gp.assert_gradients(loss, grad, PARAMS, seed=3)*",
            "E * reproduce: gp.check(loss, grad, params, strategy='full', method='richardson', seed=3)",
        ]
    )
    # __tracebackhide__: the user's line is shown, gradprobe's frames are not
    failures = out.split("= FAILURES =")[1].split("short test summary")[0].split("warnings summary")[0]
    assert "_assert.py" not in failures and "_pytest_plugin.py" not in failures and "_check.py" not in failures


def test_gradprobe_seed_option_seeds_the_fixture(pytester):
    pytester.makepyfile(
        test_seed="""
        def test_seed(gradprobe):
            import numpy as np
            report = gradprobe.check(lambda p: float(np.sum(p**2)), lambda p: 2 * p, np.ones(3))
            assert gradprobe.seed == report.seed == 7
            assert gradprobe.check(lambda p: float(np.sum(p**2)), lambda p: 2 * p, np.ones(3), seed=1).seed == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gradprobe-seed", "7")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gradprobe: seed 7"])


def test_default_seed_and_help(pytester):
    pytester.makepyfile(test_default="def test_default(gradprobe):\n    assert gradprobe.seed == 0\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "--gradprobe-seed=N" in help_text


def test_a_bad_seed_is_a_usage_error(pytester):
    pytester.makepyfile(test_any="def test_any():\n    pass\n")
    result = pytester.runpytest_subprocess("--gradprobe-seed", "minus-one")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gradprobe-seed must be a non-negative integer, got 'minus-one'*"])


def test_the_plugin_is_registered_by_entry_point(pytester):
    """Loaded without `-p` or a conftest, under the name "gradprobe" (so `-p no:gradprobe` removes it)."""
    pytester.makepyfile(test_fixture="def test_fixture(gradprobe):\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:gradprobe")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'gradprobe' not found*"])


FRAMEWORK_TEST = '''
import sys

import jax
import jax.numpy as jnp
import torch


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 6 * x**2  # bug: 3 belongs


@jax.custom_vjp
def cube(x):
    return x**3


cube.defvjp(lambda x: (x**3, x), lambda x, g: (g * 6 * x**2,))


def test_torch(gradprobe):
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert gradprobe.torch.check(torch.sin, x).seed == 5
    assert gradprobe.torch.check(torch.sin, x, seed=1).seed == 1
    net = torch.nn.Linear(3, 1).double()
    assert gradprobe.torch.check_module(net, torch.nn.MSELoss(), torch.ones(2, 3).double(), torch.ones(2, 1).double()).seed == 5
    gradprobe.torch.assert_gradients(Cube.apply, x)


def test_jax(gradprobe):
    x = jnp.array([0.5, -1.0, 2.0])
    assert gradprobe.jax.check(jnp.sin, x).seed == 5
    assert gradprobe.jax.assert_gradients(jnp.sin, x).ok
    gradprobe.jax.assert_gradients(cube, x)
'''


def test_the_fixture_seeds_the_torch_and_jax_checks_and_a_failure_prints_the_whole_report(pytester):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytester.makepyfile(test_frameworks=FRAMEWORK_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gradprobe-seed", "5")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*gradprobe.torch.assert_gradients(Cube.apply, x)*",
            "E *GradientMismatch: gradprobe FAIL: 1 of 1 tensors wrong (input0)",
            "E * input0 * FAIL * 2.00x",
            "E * hint: input0 is exactly 2.00x the numerical gradient*",
            "E * note: vector output (3,) checked through a random Gaussian cotangent v (seed 5)*",
            "E * reproduce: gp.torch.check(fn, *inputs, seed=5)",
            "*gradprobe.jax.assert_gradients(cube, x)*",
            "E *GradientMismatch: gradprobe FAIL: 1 of 1 tensors wrong (x)",
            "E * hint: x is exactly 2.00x the numerical gradient*",
            "E * reproduce: gp.jax.check(fn, *args, seed=5)",
        ]
    )
    # the seeded calls before each failing line passed; the traceback shows no frame of gradprobe's
    failures = result.stdout.str().split("= FAILURES =")[1].split("short test summary")[0]
    for ours in ("_assert.py", "_pytest_plugin.py", "adapters/torch.py", "adapters/jax.py"):
        assert ours not in failures


def test_starting_pytest_imports_no_framework(pytester):
    pytester.makepyfile(
        test_lazy="""
        import sys

        def test_numpy_only(gradprobe):
            import numpy as np
            assert gradprobe.check(lambda p: float(np.sum(p**2)), lambda p: 2 * p, np.ones(3)).ok
            assert "torch" not in sys.modules and "jax" not in sys.modules
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
