"""How is a failing tensor wrong? Patterns read off the analytic and numerical values."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ._verdict import FAIL, KINK


@dataclass(frozen=True)
class Diagnosis:
    summary: str  # short, for the table: "2.00x", "sign flipped", "transposed" ...
    hint: str  # one line saying where to look
    scale: float | None = None  # analytic / numeric, when that ratio is a constant


def _ratio_name(ratio: float, batch_size: int | None) -> str:
    if batch_size and abs(ratio * batch_size - 1) < 1e-3 * batch_size:
        return f"{ratio:.4g}x (= 1/m, m={batch_size})"
    if batch_size and abs(ratio - batch_size) < 1e-3 * batch_size:
        return f"{ratio:.4g}x (= m, m={batch_size})"
    return f"{ratio:.2f}x"


def _ratio_hint(name: str, ratio: float, batch_size: int | None) -> str:
    if batch_size and abs(ratio - batch_size) < 1e-3 * batch_size:
        return f"{name} is m={batch_size} times too large: look for a missing 1/m (mean over the batch)."
    if batch_size and abs(ratio * batch_size - 1) < 1e-3 * batch_size:
        return f"{name} is 1/m of the numerical gradient: the batch mean is applied twice."
    fraction = Fraction(ratio).limit_denominator(8)
    if abs(float(fraction) - ratio) < 1e-3 * abs(ratio) and fraction not in (0, 1):
        if fraction.denominator == 1:
            return (
                f"{name} is exactly {ratio:.2f}x the numerical gradient: look for a duplicated term, "
                f"a wrong constant (e.g. {fraction.numerator}./m instead of 1./m) or a missing 1/{fraction.numerator}."
            )
        return f"{name} is {fraction} of the numerical gradient: look for a dropped term or a wrong constant."
    return f"{name} is a constant {ratio:.3g}x the numerical gradient: look for a wrong scale factor."


def _constant_ratio(a: np.ndarray, n: np.ndarray, err: np.ndarray, floor: np.ndarray) -> float | None:
    nn = float(n @ n)
    if nn == 0:
        return None
    ratio = float(a @ n) / nn
    consistent = np.abs(a - ratio * n) <= 2 * (abs(ratio) * err + floor) + 1e-6 * np.abs(ratio * n)
    return ratio if np.all(consistent) else None


def diagnose(
    name: str,
    shape: tuple[int, ...],
    analytic: np.ndarray,
    numeric: np.ndarray,
    error: np.ndarray,
    floor: np.ndarray,
    codes: np.ndarray,
    batch_size: int | None = None,
) -> Diagnosis:
    """Name the shape of a failure from a tensor's flat analytic/numeric values and element codes."""
    wrong = codes == FAIL
    if not np.any(np.abs(analytic)) and np.any(np.abs(numeric) > error):
        return Diagnosis("all zeros", f"{name}'s gradient is all zeros: is it detached, or never accumulated?", 0.0)
    ratio = _constant_ratio(analytic, numeric, error, floor)
    # Elements where both sides are ~0 (dead units) fit any ratio; count only the others.
    significant = np.abs(numeric) > error + floor
    if ratio is not None and np.any(wrong) and wrong.sum() >= 0.5 * significant.sum():
        if abs(ratio + 1) < 1e-3:
            return Diagnosis("sign flipped", f"{name} has the wrong sign: look for a flipped subtraction.", ratio)
        return Diagnosis(_ratio_name(ratio, batch_size), _ratio_hint(name, ratio, batch_size), ratio)
    if len(shape) == 2 and shape[0] == shape[1]:
        transposed = numeric.reshape(shape).T.ravel()
        if np.all(np.abs(analytic - transposed) <= 2 * error + floor):
            return Diagnosis("transposed", f"{name} is the transpose of the numerical gradient: swap the operands' order.")
    if np.all(codes[wrong | (codes == KINK)] == KINK) and not np.any(wrong):
        return Diagnosis("wrong only at kinks", f"{name} disagrees only at non-differentiable points.")
    count = int(wrong.sum())
    where = _lines(shape, np.flatnonzero(wrong))
    if count <= max(1, wrong.size // 4):
        return Diagnosis(
            f"{count} of {wrong.size} wrong{where}",
            f"{name} is right except at {count} element(s){where}: look for an indexing or boundary slip.",
        )
    return Diagnosis(f"{count} of {wrong.size} wrong", f"{name} is wrong at most elements with no constant factor: recheck its formula.")


def _lines(shape: tuple[int, ...], flat_wrong: np.ndarray) -> str:
    """' in row 2' / ' in column 0' when every wrong element shares one row or column of a matrix."""
    if len(shape) != 2 or len(flat_wrong) < 2:
        return ""
    rows, cols = np.unravel_index(flat_wrong, shape)
    if len(set(rows.tolist())) == 1:
        return f" (all in row {rows[0]})"
    if len(set(cols.tolist())) == 1:
        return f" (all in column {cols[0]})"
    return ""
