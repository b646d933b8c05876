"""A nearby point: the user's parameters, each moved by a small seeded random fraction of its scale.

Where the function is not differentiable at the user's point (elements at kinks), a check at a
nearby point, almost surely clear of every kink, still says whether the gradient code is right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..params._params import Params
from ._differences import element_scales

#: Every parameter moves by at most this fraction of its scale (`element_scales`), uniformly at
#: random: far above the ulps of float32 and the float64 reference's finest steps, so the kinks
#: that sat at the point move clear of the probes, and small enough to stay in the same region
#: of a network (no activation pattern changes except at the ties themselves).
NEARBY_MOVE = 1e-4
#: Keeps the nearby point's draw apart from the check's own random streams.
_STREAM = 0x6E656172


def nearby_point(params: Params, seed: int) -> Any:
    """The user's structure at a nearby point (seeded by the check's `seed`)."""
    rng = np.random.default_rng([seed, _STREAM])
    move = rng.uniform(-1.0, 1.0, params.size) * NEARBY_MOVE * element_scales(params)
    return params.build(params.values + move)
