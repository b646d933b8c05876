"""A complex tensor's elements, from the results of its real and imaginary parts.

The core probes a complex tensor's parts one by one (`params._complex`); its report speaks of its
elements: one per complex number, indexed in the tensor's own shape, with complex analytic and
numerical values (PyTorch's convention; a part not probed one by one is NaN), the larger of the
two parts' error bars (each part is judged against its own), and one outcome, the worst of its
parts' (a wrong part makes a wrong element).
"""

from __future__ import annotations

import numpy as np

from ..judge._elements import ElementResults
from ..judge._verdict import FAIL, KINK, NOISE, NONFINITE, PASS
from ..params._complex import joined
from ..params._params import Leaf
from ..report._types import Element

#: Which part's outcome an element takes: the later in this order.
_SEVERITY = np.array([PASS, KINK, NOISE, NONFINITE, FAIL])
_RANK = np.argsort(_SEVERITY)  # code -> rank


def element_codes(leaf: Leaf, results: ElementResults) -> tuple[np.ndarray, np.ndarray]:
    """The elements (flat positions in the tensor) some part of which was probed, and each one's outcome."""
    elements, which = np.unique((results.indices - leaf.offset) // 2, return_inverse=True)
    rank = np.zeros(len(elements), dtype=np.int64)
    np.maximum.at(rank, which, _RANK[results.codes])
    return elements, _SEVERITY[rank].astype(results.codes.dtype)


def complex_elements(analytic: np.ndarray, leaf: Leaf, results: ElementResults) -> list[tuple[float, Element]]:
    """Each element some part of which `results` holds, with its disagreement (the larger of its
    parts'; inf where a numerical value is not finite) for ordering."""
    e = results.estimates
    local = results.indices - leaf.offset
    elements, which = np.unique(local // 2, return_inverse=True)
    numeric = np.full((len(elements), 2), np.nan)
    numeric[which, local % 2] = e.numeric
    bars = np.zeros(len(elements))
    np.maximum.at(bars, which, e.error + results.floor)
    gaps = np.zeros(len(elements))
    with np.errstate(invalid="ignore"):
        part_gaps = np.where(np.isfinite(e.numeric), np.abs(analytic[results.indices] - e.numeric), np.inf)
    np.maximum.at(gaps, which, part_gaps)
    both = leaf.offset + 2 * elements[:, None] + np.arange(2)
    values = analytic[both]
    return [
        (float(gaps[k]), Element(
            tuple(int(i) for i in np.unravel_index(int(element), leaf.tensor_shape)),
            complex(values[k, 0], values[k, 1]), complex(numeric[k, 0], numeric[k, 1]), error_bar=float(bars[k]),
        ))  # fmt: skip
        for k, element in enumerate(elements)
    ]


def complex_arrays(leaf: Leaf, analytic: np.ndarray, numeric: np.ndarray, bar: np.ndarray) -> tuple[np.ndarray, ...]:
    """A complex tensor probed whole: its analytic and numerical gradients (complex, in the
    tensor's shape) and per element the larger of its parts' error bars."""
    return (
        joined(analytic.reshape(leaf.shape)), joined(numeric.reshape(leaf.shape)), bar.reshape(leaf.shape).max(axis=-1),
    )  # fmt: skip
