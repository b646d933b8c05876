"""The Plan: which points to evaluate the loss at.

A coordinate probe moves one parameter by ``± h`` and ``± h/2``; its answer is exact for that
element. Points are rounded to the parameter's dtype first, and the rounded displacement is what
the Estimator uses, so the probe measures what the loss really saw.
"""

from __future__ import annotations

import numpy as np

from ._differences import OFFSETS
from ._objective import Point
from ._params import Params


def round_at(params: Params, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Round `values` destined for flat positions `indices` to those parameters' dtypes."""
    rounded = np.array(values, dtype=float)
    for leaf in params.leaves:
        if leaf.dtype == np.float64:
            continue
        inside = (indices >= leaf.offset) & (indices < leaf.offset + leaf.size)
        rounded[inside] = rounded[inside].astype(leaf.dtype)
    return rounded


def coordinate_points(
    params: Params, indices: np.ndarray, steps: np.ndarray, offsets: np.ndarray = OFFSETS
) -> tuple[list[Point], np.ndarray]:
    """Points ``x_i + offsets * h_i`` for each coordinate ``i`` in `indices`.

    Returns the points (probe-major: all offsets of the first index, then the next) and the
    rounded displacements, shaped ``(len(indices), len(offsets))``.
    """
    x = params.values[indices]
    targets = x[:, None] + offsets[None, :] * steps[indices, None]
    positions = np.repeat(indices, len(offsets))
    moved = round_at(params, positions, targets.ravel()).reshape(targets.shape)
    points = [(np.array([i]), np.array([v])) for i, v in zip(positions, moved.ravel())]
    return points, moved - x[:, None]
