"""The float64 reference: the loss evaluated in float64 for parameters of lower precision.

Finite differences of a float32 loss resolve a gradient to about 1e-3 at best, and a step can
cross a kink that a float64 evaluation keeps clear of; in float64 the numerical side is exact to
about 1e-10 whatever the parameters' dtype. The gradient under test stays the one the user's
`grad` computes for the parameters as given; its rounding at their own precision is measured
against `grad` in float64 (`_analytic.gradient_rounding`), so a backward that is wrong only at low
precision still fails.
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

#: Parameters of a dtype with a larger machine epsilon (float16: 9.8e-4, bfloat16: 7.8e-3) cannot
#: be checked in their own precision at all: a float16 loss carries about 1e-3 relative noise, so
#: its finite differences resolve only about a tenth of a gradient, whatever the step.
SHADOW_EPS = 1e-4


def needs_shadow(params: Params) -> bool:
    """Whether some parameter is below float64, so that a float64 reference is tried by default."""
    return any(leaf.dtype != np.float64 for leaf in params.leaves)


def _lower(params: Params) -> str:
    names = [f"`{leaf.name}`" for leaf in params.leaves if leaf.dtype != np.float64]
    dtypes = sorted({str(leaf.tensor_dtype) for leaf in params.leaves if leaf.dtype != np.float64})
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{shown} ({'/'.join(dtypes)})"


def shadowed_objective(
    loss: Callable[[Any], Any], params: Params, options: Options, notes: list[str]
) -> tuple[Objective, float | None, str]:
    """The objective the probes evaluate, the loss at the point when it was already evaluated
    (else None), and the reference: "float64" or "native". What was decided goes to `notes`.

    `shadow=True` insists on float64 (a loss that fails there is an error); `shadow=False` keeps
    the parameters' own dtypes; `shadow=None` (the default) tries float64 for parameters below it
    and falls back to their own dtypes, with a note, when the loss refuses float64.
    """
    shadow = needs_shadow(params) if options.shadow is None else options.shadow
    if not shadow:
        require_sendable(loss, params, options.executor)
        return Objective(loss, params, executor=options.executor, vectorized=options.vectorized), None, "native"
    widened = Params(params.build(params.values, dtype=np.float64))
    require_sendable(loss, widened, options.executor)
    objective = Objective(loss, widened, executor=options.executor, vectorized=options.vectorized)
    if options.shadow:
        return objective, None, "float64"  # asked for: a loss that fails in float64 is an error
    try:
        f0 = objective.initial()
    except GradprobeError as error:
        native = Objective(loss, params, executor=options.executor, vectorized=options.vectorized)
        native.nfev = objective.nfev  # the failed float64 call counts
        coarse = sorted({str(leaf.dtype) for leaf in params.leaves if float(np.finfo(leaf.dtype).eps) > SHADOW_EPS})
        notes.append(
            f"the loss could not be evaluated in float64 ({error}), so it was evaluated in the parameters' own "
            f"precision, {_lower(params)}"
            + (
                f": {'/'.join(coarse)} finite differences resolve a tenth of a gradient at best"
                if coarse
                else ": its finite differences are coarser and can cross kinks a float64 evaluation keeps clear of"
            )
            + "; make the loss accept float64 parameters to check it more finely."
        )
        return native, None, "native"
    return objective, f0, "float64"
