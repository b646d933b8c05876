import gradprobe as gp


def test_public_surface_is_pinned():
    assert sorted(gp.__all__) == sorted(
        [
            "Element",
            "GradientMismatch",
            "GradprobeError",
            "InvalidArgument",
            "InvalidValue",
            "Report",
            "TensorReport",
            "UserFunctionError",
            "__version__",
            "check",
        ]
    )
    for name in gp.__all__:
        assert hasattr(gp, name)


def test_errors_share_one_root_and_builtin_types():
    assert issubclass(gp.InvalidArgument, gp.GradprobeError) and issubclass(gp.InvalidArgument, TypeError)
    assert issubclass(gp.InvalidValue, gp.GradprobeError) and issubclass(gp.InvalidValue, ValueError)
    assert issubclass(gp.GradientMismatch, AssertionError)


def test_importing_gradprobe_imports_no_optional_dependency():
    import subprocess
    import sys

    code = "import sys, gradprobe; print(sorted(m for m in ('torch', 'jax', 'rich', 'matplotlib', 'dask', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
