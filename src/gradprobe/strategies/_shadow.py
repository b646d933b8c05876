"""The float64 reference: evaluating the loss in float64 for parameters too coarse to difference.

The gradient under test stays the one the user's `grad` computes for the parameters as given;
only the numerical side moves to float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import GradprobeError
from ..estimate._executor import require_sendable
from ..estimate._objective import Objective
from ..params._params import Params
from ._options import Options

#: Parameters of a dtype with a larger machine epsilon (float16: 9.8e-4) are probed in float64 by
#: default: a float16 loss carries about 1e-3 relative noise, so its finite differences resolve
#: only about a tenth of a gradient, whatever the step.
SHADOW_EPS = 1e-4


def needs_shadow(params: Params) -> bool:
    """Whether some parameter's dtype is too coarse for finite differences to resolve a gradient."""
    return any(float(np.finfo(leaf.dtype).eps) > SHADOW_EPS for leaf in params.leaves)


def shadowed_objective(
    loss: Callable[[Any], Any], params: Params, options: Options, notes: list[str]
) -> tuple[Objective, float | None]:
    """The objective the probes evaluate: in float64 with `shadow` (by default, for float16 parameters).

    Returns the objective and the loss at the point when it was already evaluated (else None);
    what was decided goes to `notes`.
    """
    shadow = needs_shadow(params) if options.shadow is None else options.shadow
    if not shadow:
        require_sendable(loss, params, options.executor)
        return Objective(loss, params, executor=options.executor, vectorized=options.vectorized), None
    widened = Params(params.build(params.values, dtype=np.float64))
    require_sendable(loss, widened, options.executor)
    objective = Objective(loss, widened, executor=options.executor, vectorized=options.vectorized)
    if options.shadow:
        return objective, None  # asked for: a loss that fails in float64 is an error
    coarse = [f"`{leaf.name}`" for leaf in params.leaves if float(np.finfo(leaf.dtype).eps) > SHADOW_EPS]
    which = f"{', '.join(coarse)} {'is' if len(coarse) == 1 else 'are'} float16"
    try:
        f0 = objective.initial()
    except GradprobeError as error:
        native = Objective(loss, params, executor=options.executor, vectorized=options.vectorized)
        native.nfev = objective.nfev  # the failed float64 call counts
        notes.append(
            f"the loss could not be evaluated in float64 ({error}), so it was evaluated in the parameters' own "
            f"precision ({which}): float16 finite differences resolve only about a tenth of a gradient; make the "
            "loss accept float64 parameters to check it more finely."
        )
        return native, None
    notes.append(
        f"the loss was evaluated in float64 ({which}, whose finite differences cannot resolve a gradient); the "
        "gradient under test is still the one `grad` computed in float16. Pass shadow=False to evaluate the loss "
        "in float16."
    )
    return objective, f0
