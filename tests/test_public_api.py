import pytest

import gradprobe as gp


def test_public_surface_is_pinned():
    assert sorted(gp.__all__) == sorted(
        [
            "Element",
            "Finding",
            "GradientMismatch",
            "GradprobeError",
            "InvalidArgument",
            "InvalidValue",
            "Report",
            "TensorReport",
            "UserFunctionError",
            "__version__",
            "assert_gradients",
            "check",
            "check_hvp",
            "check_jacobian",
            "check_vjp",
        ]
    )
    for name in gp.__all__:
        assert hasattr(gp, name)


def test_an_element_unpacks_as_three_values_and_names_its_error_bar():
    element = gp.Element((1, 2), 2.0, 1.0, error_bar=1e-9)
    index, analytic, numeric = element
    assert (index, analytic, numeric) == ((1, 2), 2.0, 1.0) == tuple(element)
    assert len(element) == 3 and element[0] == element.index == (1, 2) and element[-1] == element.numeric == 1.0
    assert element.error_bar == 1e-9
    assert gp.Element((0,), 1.0, 1.0).error_bar is None  # built as before, from the three values
    with pytest.raises(AttributeError):
        element.error_bar = 0.0  # frozen, like the reports that hold it
    with pytest.raises(ValueError, match="not enough values to unpack"):
        index, analytic, numeric, bar = element


def test_errors_share_one_root_and_builtin_types():
    assert issubclass(gp.InvalidArgument, gp.GradprobeError) and issubclass(gp.InvalidArgument, TypeError)
    assert issubclass(gp.InvalidValue, gp.GradprobeError) and issubclass(gp.InvalidValue, ValueError)
    assert issubclass(gp.GradientMismatch, AssertionError)


@pytest.mark.slow
def test_importing_gradprobe_imports_no_optional_dependency():
    import subprocess
    import sys

    code = "import sys, gradprobe; print(sorted(m for m in ('torch', 'jax', 'rich', 'matplotlib', 'dask', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_framework_adapters_are_lazy_attributes():
    import subprocess
    import sys

    code = (
        "import sys, gradprobe as gp; assert 'torch' not in sys.modules; "
        "print(callable(gp.torch.check), callable(gp.torch.check_module), 'torch' in sys.modules, 'torch' in dir(gp))"
    )
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "True"]


@pytest.mark.slow
def test_missing_framework_gives_the_install_hint():
    import subprocess
    import sys

    # Hide jax from the import system in a child process, as on a machine without it.
    code = (
        "import sys; sys.modules['jax'] = None; import importlib.util as u; u.find_spec = lambda name, *a: None\n"
        "import gradprobe as gp\n"
        "try:\n    gp.jax\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install gradprobe[jax]" in out


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'tensorflow'"):
        gp.tensorflow  # noqa: B018
