"""Machine-readable reports: `Report.to_dict` following ``report.schema.json``, and a DataFrame.

The dict is built from the dataclass fields themselves, so a field added to `Report` or
`TensorReport` appears in it without a change here; ``tests/test_schema.py`` then fails until
the schema documents it.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, is_dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._types import Report, TensorReport

#: The version `Report.to_dict` writes; ``report.schema.json`` pins it as a constant.
SCHEMA_VERSION = 5
SCHEMA_FILE = "report.schema.json"
#: TensorReport fields holding whole arrays: in the dict only when asked for.
VALUE_FIELDS = ("analytic", "numeric", "error_bar")


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("gradprobe").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The JSON Schema of `Report.to_dict` (a fresh copy on every call).

    Examples
    --------
    >>> from gradprobe.report._schema import load_schema
    >>> load_schema()["properties"]["schema_version"]["const"]
    5
    """
    return json.loads(_schema_text())


def plain(value: Any) -> Any:
    """`value` as JSON-ready Python: lists, dicts with str keys, finite floats or "nan"/"inf"/"-inf";
    a complex number as the list [real part, imaginary part].

    Examples
    --------
    >>> plain((np.float32(0.5), float("inf"), {"a": (1, 2)}, 3 - 4j))
    [0.5, 'inf', {'a': [1, 2]}, [3.0, -4.0]]
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isfinite(number):
            return number
        return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")
    if isinstance(value, (complex, np.complexfloating)):  # a complex tensor's value: [real, imaginary]
        return [plain(value.real), plain(value.imag)]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.ravel().tolist()]
    if hasattr(value, "_asdict"):  # a NamedTuple
        return {key: plain(v) for key, v in value._asdict().items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(key): plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return repr(value)


def _option_value(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def tensor_to_dict(tensor: TensorReport, *, values: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in fields(tensor):
        if f.name in VALUE_FIELDS:
            if values:
                data[f.name] = plain(getattr(tensor, f.name))
            continue
        data[f.name] = plain(getattr(tensor, f.name))
    data["ok"] = tensor.ok
    # The sentences and the numbers they are rendered from, side by side.
    for rendered in ("diagnosis", "hint", "diagnosis_kind", "scale"):
        data[rendered] = plain(getattr(tensor, rendered))
    return data


def report_to_dict(report: Report, *, values: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for f in fields(report):
        value = getattr(report, f.name)
        if f.name == "tensors":
            data["tensors"] = [tensor_to_dict(t, values=values) for t in value.values()]
        elif f.name == "options":
            data["options"] = {str(k): plain(_option_value(v)) for k, v in value.items()}
        elif f.name == "nearby":
            data["nearby"] = None if value is None else report_to_dict(value, values=values)
        elif f.name == "points":
            data["points"] = [report_to_dict(point, values=values) for point in value]
        elif f.name == "guarantee" and value is not None:
            # The sentence the text report prints, beside the numbers it is read off.
            data["guarantee"] = {**plain(value), "statement": str(value)}
        else:
            data[f.name] = plain(value)
    data["ok"] = report.ok
    data["reproduce"] = report.reproduce
    return data


def report_to_dataframe(report: Report) -> Any:
    """One row per tensor, indexed by name; counts become ``n_pass``, ``n_fail``... columns."""
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - exercised only without pandas
        raise ImportError(
            "`Report.to_dataframe` needs pandas: `pip install pandas` (or gradprobe[report])."
        ) from error
    rows = []
    for tensor in report.tensors.values():
        row = {
            "shape": tensor.shape,
            "status": tensor.status,
            "difference": tensor.difference,
            "resolution": tensor.resolution,
            "scale": tensor.scale,
            "diagnosis": tensor.diagnosis,
            "hint": tensor.hint,
            "reason": tensor.reason,
            "taylor_slope": tensor.taylor_slope,
            "n_kinks": len(tensor.kinks),
        }
        row.update({f"n_{outcome}": count for outcome, count in tensor.counts.items()})
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(list(report.tensors), name="tensor"))
    frame.attrs.update(status=report.status, resolution=report.resolution, seed=report.seed)
    return frame
