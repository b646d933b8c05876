"""Complex parameters: the core holds a complex tensor as the real tensor of its two parts.

A complex tensor ``z`` of shape ``S`` is, inside a check, a real tensor of shape ``S + (2,)``
holding ``(Re z, Im z)`` per element (numpy's own memory layout of a complex array), so that the
numerical side differentiates the real loss ``L`` along ``Re z`` and ``Im z`` separately and the
gradient under test is compared part by part with ``(dL/dRe z, dL/dIm z)``. The loss always gets
complex arrays back (`joined`), and the report speaks of ``z``'s elements, not of its parts.

Which complex number "the gradient of a real loss" is depends on the framework:

- PyTorch (and gradprobe's numpy `check`): ``dL/dRe z + i dL/dIm z``;
- JAX: ``dL/dRe z - i dL/dIm z``, the conjugate.

For ``L = |z|**2 + Re z`` at ``z = 1+2j``: PyTorch's gradient is ``3+4j``, JAX's ``3-4j``. The core
reads gradients in PyTorch's convention (`gradient_parts`); the JAX adapter conjugates its
gradients on the way in and its report's values on the way out (`conjugate_values`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .._errors import InvalidArgument

if TYPE_CHECKING:
    from ..report._types import Element, Report, TensorReport

#: The complex dtypes checked, with the real dtype of their parts (numpy has no complex32).
PART_DTYPES = {np.dtype(np.complex64): np.dtype(np.float32), np.dtype(np.complex128): np.dtype(np.float64)}
_COMPLEX_OF = {part: whole for whole, part in PART_DTYPES.items()}


def require_checked_complex(dtype: np.dtype, name: str, argument: str) -> np.dtype:
    """The real dtype of the parts of a complex `dtype`, or an error naming `argument` for one
    gradprobe does not check (``clongdouble``)."""
    part = PART_DTYPES.get(np.dtype(dtype))
    if part is None:
        raise InvalidArgument(
            f"`{argument}` entry `{name}` has dtype {dtype}; gradprobe checks complex64 and complex128 parameters. "
            "Convert it with `.astype(np.complex128)`.",
            argument=argument,
        )
    return part


def complex_dtype(part: np.dtype) -> np.dtype:
    """The complex dtype whose parts are of dtype `part` (float32: complex64, float64: complex128)."""
    return _COMPLEX_OF[np.dtype(part)]


def parts(values: np.ndarray) -> np.ndarray:
    """A complex array as a real float64 array with a last axis of 2: (real part, imaginary part).

    Examples
    --------
    >>> parts(np.array([1 + 2j, 3 - 4j]))
    array([[ 1.,  2.],
           [ 3., -4.]])
    """
    values = np.asarray(values)
    return np.stack([values.real, values.imag], axis=-1).astype(np.float64)


def joined(values: np.ndarray) -> np.ndarray:
    """The complex array whose parts `values` (float32 or float64, last axis of 2) holds: complex64
    or complex128. A view of `values` where its memory allows (it is the core's own copy).

    Examples
    --------
    >>> joined(np.array([[1.0, 2.0], [3.0, -4.0]]))
    array([1.+2.j, 3.-4.j])
    """
    values = np.ascontiguousarray(values)
    if values.dtype not in _COMPLEX_OF:  # the complex step is refused up front (`refuse_complex_step`)
        raise TypeError(f"complex parameters are held as float32 or float64 parts, not {values.dtype}")
    return values.view(_COMPLEX_OF[values.dtype])[..., 0]


def element_positions(positions: np.ndarray) -> np.ndarray:
    """The flat positions, in a complex tensor, of the elements whose parts lie at `positions` of its
    layout (each element once, in order).

    Examples
    --------
    >>> element_positions(np.array([1, 2, 3, 6]))
    array([0, 1, 3])
    """
    return np.unique(np.asarray(positions) // 2)


def gradient_parts(gradient: np.ndarray) -> np.ndarray:
    """A gradient in PyTorch's convention, ``dL/dRe + i dL/dIm``, as the parts the numerical side
    measures, ``(dL/dRe, dL/dIm)`` (float64, a last axis of 2)."""
    return parts(gradient)


def refuse_complex_step(method: str, complex_names: list[str]) -> None:
    """Before any work: the complex step differentiates a loss by evaluating it at complex
    parameters, which complex parameters already are."""
    if method == "complex" and complex_names:
        raise InvalidArgument(
            f"`method`='complex' (the complex step) evaluates the loss at complex parameters, which "
            f"{', '.join(f'`{n}`' for n in complex_names[:3])} already are, so it cannot apply; use the default "
            "method='auto' (Richardson differences along each real and imaginary part).",
            argument="method",
        )


def conjugate_values(report: Report) -> Report:
    """`report` with the complex values of its tensors conjugated: the core's PyTorch-convention
    gradients shown in JAX's convention (nearby and per-point reports included)."""

    def element(e: Element) -> Element:
        return replace(e, analytic=complex(e.analytic).conjugate(), numeric=complex(e.numeric).conjugate())

    def tensor(t: TensorReport) -> TensorReport:
        if not any(np.iscomplexobj(e.analytic) for e in t.worst) and not np.iscomplexobj(t.analytic):
            return t  # a real tensor
        return replace(
            t, worst=tuple(element(e) for e in t.worst),
            analytic=None if t.analytic is None else np.conj(t.analytic),
            numeric=None if t.numeric is None else np.conj(t.numeric),
        )  # fmt: skip

    return replace(
        report,
        tensors={name: tensor(t) for name, t in report.tensors.items()},
        nearby=None if report.nearby is None else conjugate_values(report.nearby),
        points=tuple(conjugate_values(point) for point in report.points),
    )
