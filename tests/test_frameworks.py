"""`gradprobe.torch` and `gradprobe.jax` as modules, and their `assert_gradients`: the same comfort
as `gp.assert_gradients` gives numpy code."""

import subprocess
import sys

import numpy as np
import pytest

from _counting import Counting

import gradprobe as gp


# -- the modules ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_module_is_gp_dot_framework_before_and_after_importing_it(framework):
    pytest.importorskip(framework)
    # A fresh process: here the suite has long imported both.
    code = (
        "import sys, gradprobe as gp\n"
        f"assert {framework!r} not in sys.modules\n"
        f"first = gp.{framework}\n"
        f"import gradprobe.{framework}\n"
        f"from gradprobe.{framework} import assert_gradients, check\n"
        f"print(first is gp.{framework} is gradprobe.{framework}, check is first.check, "
        f"assert_gradients is first.assert_gradients)\n"
        f"import gradprobe.{framework} as again\n"
        f"print(again is first)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "True"]


@pytest.mark.slow
def test_importing_the_module_first_binds_the_same_attribute():
    pytest.importorskip("torch")
    code = "import gradprobe.torch; import gradprobe as gp; print(gp.torch is gradprobe.torch, callable(gp.torch.check_module))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


@pytest.mark.parametrize(
    ("framework", "names"),
    [("torch", ["assert_gradients", "check", "check_module"]), ("jax", ["assert_gradients", "check"])],
)
def test_the_public_surface_of_each_framework_is_pinned(framework, names):
    pytest.importorskip(framework)
    import importlib

    module = importlib.import_module(f"gradprobe.{framework}")
    adapter = importlib.import_module(f"gradprobe.adapters.{framework}")
    assert sorted(module.__all__) == names
    for name in names:  # the adapter's own functions, not copies
        assert getattr(module, name) is getattr(adapter, name)


@pytest.mark.slow
@pytest.mark.parametrize(("framework", "label"), [("torch", "PyTorch"), ("jax", "JAX")])
def test_importing_the_module_without_its_framework_says_how_to_install_it(framework, label):
    # Hide the framework from the import system in a child process, as on a machine without it.
    code = (
        f"import sys; sys.modules[{framework!r}] = None; import importlib.util as u; u.find_spec = lambda name, *a: None\n"
        "try:\n"
        f"    import gradprobe.{framework}\n"
        "except ModuleNotFoundError as e:\n"
        "    print(e.name, '|', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == (
        f"{framework} | gradprobe.{framework} needs {label}, which is not installed: pip install gradprobe[{framework}]"
    )


# -- assert_gradients -------------------------------------------------------------------------------




def torch_problem():
    """`gp.torch`, a cube whose custom backward doubles its gradient, and a float64 input."""
    torch = pytest.importorskip("torch")

    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 6 * x**2  # bug: 3 belongs

    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    return gp.torch, Cube.apply, torch.sin, torch.relu, x, torch.zeros(3, dtype=torch.float64, requires_grad=True)


def jax_problem():
    """The same for `gp.jax`: a `custom_vjp` cube with a doubled rule."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.custom_vjp
    def cube(x):
        return x**3

    cube.defvjp(lambda x: (x**3, x), lambda x, g: (g * 6 * x**2,))
    return gp.jax, cube, jnp.sin, jax.nn.relu, jnp.array([0.5, -1.0, 2.0]), jnp.zeros(3)


PROBLEMS = pytest.mark.parametrize("problem", [torch_problem, jax_problem], ids=["torch", "jax"])


@PROBLEMS
def test_a_right_gradient_returns_the_report(problem):
    module, _, sin, _, x, _ = problem()
    report = module.assert_gradients(sin, x)
    assert isinstance(report, gp.Report) and report.ok and report.nfev > 0


@PROBLEMS
def test_a_wrong_gradient_raises_with_the_whole_report(problem):
    module, wrong, _, _, x, _ = problem()
    with pytest.raises(gp.GradientMismatch) as caught:
        module.assert_gradients(wrong, x, seed=4)
    error = caught.value
    assert isinstance(error, AssertionError)
    assert error.report.status == "fail" and error.report.seed == 4
    assert str(error) == str(error.report)  # the full text, not a summary
    lines = str(error).splitlines()
    assert lines[0].startswith("gradprobe FAIL: 1 of 1 tensors wrong")
    assert any("hint:" in line and "exactly 2.00x" in line for line in lines)
    name = "torch" if module is gp.torch else "jax"
    assert lines[-1] == f"  reproduce: gp.{name}.check(fn, *{'inputs' if name == 'torch' else 'args'}, seed=4)"


@PROBLEMS
def test_inconclusive_fails_unless_allowed(problem):
    module, _, _, relu, _, zeros = problem()
    with pytest.raises(gp.GradientMismatch, match="gradprobe INCONCLUSIVE"):
        module.assert_gradients(relu, zeros)
    assert module.assert_gradients(relu, zeros, allow_inconclusive=True).status == "inconclusive"


@PROBLEMS
def test_a_bad_flag_is_refused_before_any_work_and_options_are_checked_like_check(problem):
    module, _, sin, _, x, _ = problem()
    counting = Counting(sin)
    with pytest.raises(gp.InvalidArgument, match="`allow_inconclusive` must be True or False, got 'yes'"):
        module.assert_gradients(counting, x, allow_inconclusive="yes")
    assert counting.calls == 0
    with pytest.raises(gp.InvalidArgument, match="`strategy` must be one of"):
        module.assert_gradients(sin, x, strategy="everything")
    with pytest.raises(gp.InvalidArgument, match="`oracle` must be 'differences' or 'forward'"):
        module.assert_gradients(sin, x, oracle="magic")


def test_framework_options_reach_the_check():
    torch_module, _, _, _, x, _ = torch_problem()
    report = torch_module.assert_gradients(lambda x: (x**3).sum(), x, oracle="forward")
    assert report.method == "forward"
    jnp = pytest.importorskip("jax").numpy
    report = gp.jax.assert_gradients(lambda w, data: jnp.sum(jnp.tanh(data @ w)), jnp.ones(3), jnp.ones((2, 3)), argnums=0)
    assert report.ok and list(report.tensors) == ["w"]


def test_the_helpers_hide_themselves_from_pytest_tracebacks():
    import inspect

    pytest.importorskip("torch")
    pytest.importorskip("jax")
    from gradprobe.strategies._assert import assert_passes

    # (unwrapped: the test suite's no-mutation guard wraps every public function)
    for function in (gp.torch.assert_gradients, gp.jax.assert_gradients, assert_passes):
        assert "__tracebackhide__" in inspect.unwrap(function).__code__.co_varnames


def test_numpy_assert_gradients_is_unchanged_by_the_shared_helper():
    with pytest.raises(gp.GradientMismatch) as caught:
        gp.assert_gradients(lambda p: float(np.sum(p**3)), lambda p: 6 * p**2, np.array([1.0, 2.0]))
    assert str(caught.value) == str(caught.value.report)
    assert caught.value.report.tensors["params"].diagnosis == "2.00x"
