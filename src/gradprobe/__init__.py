"""gradprobe: is a gradient right, and if not, where and how is it wrong?"""

from .strategies._assert import assert_gradients as assert_gradients
from .strategies._check import check as check
from ._errors import (
    GradientMismatch as GradientMismatch,
    GradprobeError as GradprobeError,
    InvalidArgument as InvalidArgument,
    InvalidValue as InvalidValue,
    UserFunctionError as UserFunctionError,
)
from .report._types import Element as Element, Finding as Finding, Report as Report, TensorReport as TensorReport
from .adapters._vjp import check_hvp as check_hvp, check_jacobian as check_jacobian, check_vjp as check_vjp

__version__ = "0.1.0"

# The public classes print as `gradprobe.X` (in tracebacks and reprs), wherever they are defined.
for _public in (Element, Finding, GradientMismatch, GradprobeError, InvalidArgument, InvalidValue, Report, TensorReport, UserFunctionError):
    _public.__module__ = __name__
del _public

__all__ = [
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

# Framework adapters, imported on first use so that `import gradprobe` never imports a framework.
# `gp.torch` is the module `gradprobe.torch` (whose import says how to install a missing framework),
# so it is the same object before and after `import gradprobe.torch`.
_ADAPTERS = ("torch", "jax")


def __getattr__(name: str):
    if name not in _ADAPTERS:
        raise AttributeError(f"module 'gradprobe' has no attribute {name!r}")
    import importlib

    return importlib.import_module(f"{__name__}.{name}")  # the import binds it here: no second call


def __dir__() -> list[str]:
    return sorted([*__all__, *_ADAPTERS])
