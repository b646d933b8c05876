"""gradprobe: is a gradient right, and if not, where and how is it wrong?"""

from ._check import check as check
from ._errors import (
    GradientMismatch as GradientMismatch,
    GradprobeError as GradprobeError,
    InvalidArgument as InvalidArgument,
    InvalidValue as InvalidValue,
    UserFunctionError as UserFunctionError,
)
from ._report import Element as Element, Report as Report, TensorReport as TensorReport

__version__ = "0.1.0"

__all__ = [
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
