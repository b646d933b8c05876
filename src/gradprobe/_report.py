"""Frozen result objects. Rendering lives in `_render`; nothing here computes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

Status = Literal["pass", "fail", "inconclusive"]
SCHEMA_VERSION = 1


class Element(NamedTuple):
    """One gradient element: its index in the tensor, the analytic and the numerical value."""

    index: tuple[int, ...]
    analytic: float
    numeric: float


@dataclass(frozen=True)
class TensorReport:
    """The verdict on one parameter tensor.

    Attributes
    ----------
    name, shape : the tensor's name in the user's structure ("W1", "layers.0.weight") and shape.
    status : "pass", "fail" or "inconclusive".
    difference : ``||a - n|| / (||a|| + ||n||)`` over this tensor (the seed's measure).
    resolution : smallest relative error (in norm) of this tensor's gradient the check would catch.
    scale : analytic / numeric when that ratio is a constant across the tensor (failing tensors).
    diagnosis : short description of how it is wrong ("2.00x", "sign flipped"...), or None.
    hint : one line saying where to look, or None.
    worst : the elements with the largest disagreement, worst first.
    reason : why the tensor is inconclusive ("kink", "noise", "nonfinite"), else None.
    kinks : indices of elements at non-differentiable points (not counted as failures).
    counts : how many elements had each outcome ("pass", "fail", "kink", "noise", "nonfinite").
    taylor_slope : for failing tensors, the slope of log |remainder| against log step along the
        error's direction: about 2 for a right gradient, 1 for a wrong one.
    """

    name: str
    shape: tuple[int, ...]
    status: Status
    difference: float
    resolution: float
    scale: float | None = None
    diagnosis: str | None = None
    hint: str | None = None
    worst: tuple[Element, ...] = ()
    reason: str | None = None
    kinks: tuple[tuple[int, ...], ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    taylor_slope: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class Report:
    """The result of a gradient check.

    Attributes
    ----------
    status : "pass", "fail" or "inconclusive" (fail if any tensor fails).
    difference : the seed's global relative difference ``||a - n|| / (||a|| + ||n||)``.
    resolution : smallest relative gradient error (in norm, over all parameters) the check would
        have caught; a pass means "no error larger than this".
    nfev : loss evaluations spent.
    tensors : mapping name -> `TensorReport`, in the order of the parameters.
    ignored : gradient entries that match no parameter (e.g. the seed's ``dZ3``), ignored.
    notes : things the user should know (non-determinism, unreliable noise estimate...).
    method, strategy, seed : what was run, so the check can be reproduced.
    noise : standard deviation of the loss's noise, as measured.
    """

    status: Status
    difference: float
    resolution: float
    nfev: int
    tensors: dict[str, TensorReport]
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    method: str = "richardson"
    strategy: str = "full"
    seed: int = 0
    noise: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    @property
    def failing(self) -> tuple[str, ...]:
        """Names of the tensors that fail."""
        return tuple(name for name, tensor in self.tensors.items() if tensor.status == "fail")

    def __str__(self) -> str:
        from ._render import render_text

        return render_text(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (schema version `SCHEMA_VERSION`)."""
        data = asdict(self)
        data["ok"] = self.ok
        data["schema_version"] = SCHEMA_VERSION
        data["tensors"] = [
            {**asdict(t), "shape": list(t.shape), "worst": [e._asdict() for e in t.worst]}
            for t in self.tensors.values()
        ]
        for tensor in data["tensors"]:
            for element in tensor["worst"]:
                element["index"] = list(element["index"])
            tensor["kinks"] = [list(k) for k in tensor["kinks"]]
        data["ignored"], data["notes"] = list(self.ignored), list(self.notes)
        return data

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)
