"""Nearby points: the user's parameters, each moved by a seeded random fraction of its scale.

Two checks look away from the user's point, with one rule and two sizes: where kinks at the point
leave a tensor undecided, the same check runs at a point clear of them (`KINK_MOVE`); and
``points=k`` checks k-1 random points around the user's (`POINTS_MOVE`), where a zero bias, tied
rows or a symmetric matrix no longer hide a wrong gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..params._params import Params
from ._differences import element_scales

#: For the check at kinks: far above the ulps of float32 and the float64 reference's finest steps,
#: so the kinks that sat at the point move clear of the probes, and small enough to stay in the
#: same region of a network (no activation pattern changes except at the ties themselves).
KINK_MOVE = 1e-4
#: For ``points=k``: a transposed gradient of a symmetric W, or a bug multiplied by a zero bias,
#: is off by about the move, relative; at 10% that is above every resolution, bfloat16's (about
#: 1e-2) included, while a network stays in its working range (docs/report.md#points).
POINTS_MOVE = 0.1
#: Keeps the nearby points' draws apart from the check's own random streams.
_STREAM = 0x6E656172


def nearby_point(params: Params, seed: int, size: float, draw: int = 0) -> Any:
    """The user's structure with every parameter moved: ``x + u * size * s``.

    ``u`` is uniform in [-1, 1], drawn from (`seed`, `draw`); ``s`` is the parameter's scale,
    `element_scales`: ``max(|x|, RMS of its tensor)``, and for a tensor of zeros the RMS of all
    parameters, at most 1 (so a zero bias moves too). A nonzero parameter moves at most half-way
    to zero: none changes sign, so a variance or a probability stays in its domain.

    Examples
    --------
    >>> p = Params({"W": np.array([[1.0, 2.0], [2.0, 1.0]]), "b": np.zeros(2)})
    >>> moved = nearby_point(p, seed=0, size=0.1)
    >>> bool(moved["W"][0, 1] != moved["W"][1, 0]), bool(np.all(moved["b"] != 0))
    (True, True)
    """
    rng = np.random.default_rng([seed, _STREAM, draw])
    move = rng.uniform(-1.0, 1.0, params.size) * size * element_scales(params)
    half = 0.5 * np.abs(params.values)
    move = np.where(params.values != 0, np.clip(move, -half, half), move)
    return params.build(params.values + move)
