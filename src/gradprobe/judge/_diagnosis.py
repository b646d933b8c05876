"""How is a tensor wrong? Patterns read off the analytic and numerical values already measured.

`diagnose` looks, in this order, for: NaN/inf in the loss near the point, an all-zero gradient,
one constant factor across the tensor (2.00x, 0.25x, 1/m, sign flipped), another tensor's gradient,
a transpose or another rearrangement (`_hypotheses`), failures only at non-differentiable points,
and failures confined to some rows, columns or elements (named, with their own factor when they
share one). A gradient where the loss is flat "should be zero". Tensors that are inconclusive get
a diagnosis too (too noisy, at kinks, no derivative at this precision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ._hypotheses import Evidence, fits, layouts, swapped_hint
from ._verdict import FAIL, KINK, NOISE, NONFINITE

#: Relative tolerance for calling a measured ratio an exact integer or fraction.
EXACT = 1e-3
#: Elements named one by one at most; more are summarised by their rows or columns.
NAMED = 5
#: Rows or columns named at most.
LINES = 3
#: A factor of at least this size that is an exact integer (or its reciprocal) is read as a batch
#: size rather than a hand-typed constant such as 2 or 4.
BATCH_LIKE = 10


#: The kinds of diagnosis: how a tensor is wrong, or why it is undecided (`TensorReport.diagnosis_kind`).
KINDS = (
    "zeros", "should_be_zero", "rounded", "factor", "sign", "swapped", "transposed", "permuted", "reversed",
    "shifted", "elements", "formula", "not_localized", "reference", "loss_nonfinite", "nondeterministic",
    "no_derivative", "kinks", "noise",
)  # fmt: skip


@dataclass(frozen=True)
class Diagnosis:
    """Short `summary` for the table ("2.00x", "sign flipped"...), a one-line `hint`, the
    constant analytic/numeric `scale` when there is one, and the `kind` of finding.

    A hypothesis about the whole tensor read off some of its elements (a factor, a rearrangement)
    says what it implies for the rest, so that random directions can confirm it: `implied` maps
    flat positions of the tensor to the true gradient there; `swapped_with` names the tensor whose
    gradient this one's is.
    """

    summary: str
    hint: str
    scale: float | None = None
    implied: Callable[[np.ndarray], np.ndarray] | None = None
    swapped_with: str | None = None
    #: What was found, for code (one of `KINDS`); `summary` and `hint` say it for people.
    kind: str = "formula"


def diagnose(
    name: str,
    shape: tuple[int, ...],
    analytic: np.ndarray,
    numeric: np.ndarray,
    error: np.ndarray,
    floor: np.ndarray,
    codes: np.ndarray,
    batch_size: int | None = None,
    *,
    reason: str | None = None,
    tensor_resolution: float | None = None,
    ragged: bool = False,
    repeat_spread: float = 0.0,
    evidence: Evidence | None = None,
) -> Diagnosis:
    """Name the shape of a failure from a tensor's flat values and per-element outcome codes.

    Parameters
    ----------
    name, shape : the tensor's name and shape.
    analytic, numeric, error, floor : flat arrays: the user's gradient, the numerical one, its
        error bar and the analytic side's rounding floor.
    codes : flat per-element outcomes (indices into ``ELEMENT_STATUSES``).
    batch_size : the m of 1/m, when the user gave it.
    reason, tensor_resolution : for an inconclusive tensor, why (``"noise"``, ``"kink"``...) and
        its resolution.
    ragged : the loss has no derivative at this precision (it varies like noise at every scale).
    repeat_spread : how much identical calls of the loss differ (0: deterministic).
    evidence : for layout hypotheses (transposed, permuted or reversed axes, a shift, another
        tensor's gradient): the whole tensor's analytic gradient and where the given values lie in it.

    Examples
    --------
    >>> import numpy as np
    >>> n = np.array([1.0, -2.0, 3.0])
    >>> tiny, fail = np.full(3, 1e-9), np.full(3, 1, dtype=np.int8)
    >>> d = diagnose("W2", (3,), 2 * n, n, tiny, tiny, fail)
    >>> d.summary, d.scale
    ('2.00x', 2.0)
    >>> print(d.hint)
    W2 is exactly 2.00x the numerical gradient: look for a duplicated term, a wrong constant (e.g. 2./m instead of 1./m) or a missing 1/2.
    """
    analytic, numeric = np.asarray(analytic, dtype=float), np.asarray(numeric, dtype=float)
    error, floor = np.asarray(error, dtype=float), np.asarray(floor, dtype=float)
    tolerance = 2 * error + floor
    wrong = codes == FAIL
    # (A NaN or inf in the gradient never gets here: it is an error before any work, naming the elements.)
    if not wrong.any():
        return _undecided(name, shape, codes, reason, tensor_resolution, ragged, repeat_spread)
    usable = np.isfinite(numeric) & (codes != KINK) & (codes != NONFINITE)
    if not np.any(analytic) and np.any(np.abs(numeric[usable]) > tolerance[usable]):
        return Diagnosis(
            "all zeros",
            f"{name}'s gradient is all zeros: is it detached, never accumulated, or overwritten by a fresh buffer?",
            0.0,
            kind="zeros",
        )
    if np.any(analytic) and np.any(usable) and not np.any(np.abs(numeric[usable]) > tolerance[usable]):
        return Diagnosis(
            "should be zero",
            f"the loss does not change with {name} (its numerical gradient is zero within the error bars), but "
            f"its gradient is not: a term that cancels in the loss (a bias before a normalisation, a mean that is "
            "subtracted) or a gradient meant for another parameter?",
            implied=None if evidence is None else (lambda positions: np.zeros(len(positions))),
            kind="should_be_zero",
        )
    if _rounded_to_float32(analytic[wrong], numeric[wrong], error[wrong]):
        return Diagnosis(
            "rounded to float32",
            f"{name}'s gradient is the numerical one rounded to float32 (every wrong element is a float32 value "
            "within a float32 rounding of it): a float32 array or cast in the gradient of float64 parameters? "
            "Compute it in float64.",
            kind="rounded",
        )
    ratio = _constant_ratio(analytic[usable], numeric[usable], error[usable], floor[usable])
    # Elements where both sides are ~0 (dead units) fit any ratio; count only the others.
    significant = np.abs(numeric) > tolerance
    if ratio is not None and wrong.sum() >= 0.5 * significant.sum():
        summary, hint = _factor(name, ratio, batch_size)
        implied = None if evidence is None else (lambda positions: evidence.analytic[positions] / ratio)
        return Diagnosis(summary, hint, ratio, implied, kind="sign" if summary == "sign flipped" else "factor")
    if evidence is not None:
        found = _layout(name, evidence, numeric, tolerance, wrong)
        if found is not None:
            return found
    flat_wrong = np.flatnonzero(wrong)
    where = locate(shape, flat_wrong)
    count, size = len(flat_wrong), wrong.size
    # The wrong elements' own factor, if they share one (a slice scaled, zeroed or flipped).
    subset = _constant_ratio(analytic[flat_wrong], numeric[flat_wrong], error[flat_wrong], floor[flat_wrong])
    factor = (
        "" if subset is None or abs(subset - 1) <= EXACT
        else "sign flipped" if abs(subset + 1) < EXACT
        else "zero" if abs(subset) < EXACT
        else _factor(name, subset, batch_size)[0]
    )  # fmt: skip
    said = {"": "", "sign flipped": "with the wrong sign", "zero": "zero"}.get(factor, factor)
    detail = _paren(", ".join(part for part in (where, factor) if part))
    # "Right except at" only for a minority of the elements: a tensor wrong at every element is no slip.
    if count < size and (where and count <= size // 2 or count <= max(1, size // 4)):
        which = f", which are {said}" if factor and factor != "sign flipped" else f", {said}" if factor else ""
        return Diagnosis(
            f"{count} of {size} wrong{detail}",
            f"{name} is right except at {count} element(s){_at(where)}{which}: look for an indexing, slicing or "
            "boundary slip.",
            kind="elements",
        )
    most = (
        "every element" if count == size else "most elements" if count > size // 2 else f"{count} of its {size} elements"
    )
    if factor:
        # Many wrong elements, one factor among them: a term applied to the wrong part of the tensor.
        return Diagnosis(
            f"{count} of {size} wrong{detail}",
            f"{name} is wrong at {most}{_at(where)}, all {said}: look for a factor or mask applied to the wrong "
            "part of the tensor (a slice bound, a broadcast).",
            kind="elements",
        )
    return Diagnosis(
        f"{count} of {size} wrong",
        f"{name} is wrong at {most} with no constant factor, transpose or pattern: recheck its formula.",
        kind="formula",
    )


def _undecided(
    name: str,
    shape: tuple[int, ...],
    codes: np.ndarray,
    reason: str | None = None,
    tensor_resolution: float | None = None,
    ragged: bool = False,
    repeat_spread: float = 0.0,
) -> Diagnosis:
    """An inconclusive tensor: why the numerical side could not decide."""
    nonfinite = np.flatnonzero(codes == NONFINITE)
    if len(nonfinite):
        where = locate(shape, nonfinite)
        return Diagnosis(
            f"loss NaN/inf near {len(nonfinite)} of {codes.size}{_comma(where)}",
            f"the loss becomes NaN or inf within a step of {name}{_at(where)}: check at a point well inside its "
            "domain (log, sqrt, division), or clip the inputs.",
            kind="loss_nonfinite",
        )
    if ragged and repeat_spread > 0:
        return Diagnosis(
            "non-deterministic loss",
            f"identical calls of the loss differ (by up to {repeat_spread:.1e}), which hides {name}'s gradient at "
            "every step tried: fix its random seed, put dropout layers in eval mode, or use deterministic kernels.",
            kind="nondeterministic",
        )
    if ragged:
        return Diagnosis(
            "no derivative at this precision",
            f"the loss varies like noise between neighbouring floating-point values of {name}, at every step "
            "tried (sin of 1e30, say, whose neighbouring floats are many periods apart): it has no derivative to "
            "compare at this precision; check at smaller parameter values or in higher precision.",
            kind="no_derivative",
        )
    kinks = np.flatnonzero(codes == KINK)
    if len(kinks) == codes.size:
        return Diagnosis(
            "every element at a kink",
            f"{name} sits on a non-differentiable point at every element (relu inputs at exactly 0?): "
            "check at a random point instead.",
            kind="kinks",
        )
    if reason == "kink":
        where = locate(shape, kinks)
        return Diagnosis(
            f"{len(kinks)} of {codes.size} at kinks{_comma(where)}",
            f"{name} sits on non-differentiable points at {len(kinks)} element(s){_at(where)}, where any value "
            "between the one-sided slopes is valid, so an error there up to half their jump could hide: "
            "check at a random point instead.",
            kind="kinks",
        )
    noisy = np.flatnonzero(codes == NOISE)
    if len(noisy):
        return Diagnosis(
            f"too noisy at {len(noisy)} of {codes.size}",
            f"the loss's noise, rounding or jumps hide {name}'s gradient at {len(noisy)} element(s): make the loss "
            "deterministic, evaluate it in float64 (shadow=True), or, for a staircase (floor, round), check it "
            "away from its jumps.",
            kind="noise",
        )
    coarse = f" (resolution {tensor_resolution:.1e})" if tensor_resolution is not None else ""
    return Diagnosis(
        f"too noisy{coarse}",
        f"every element of {name} agrees within its error bar, but together the error bars could hide more than "
        "a tenth of its gradient: make the loss deterministic, or evaluate it in float64 (shadow=True).",
        kind="noise",
    )


def _layout(
    name: str, evidence: Evidence, numeric: np.ndarray, tolerance: np.ndarray, wrong: np.ndarray
) -> Diagnosis | None:
    """The first layout hypothesis the probed values fit: another tensor's gradient, then the
    tensor's own elements rearranged (`_hypotheses`)."""
    analytic = evidence.analytic[evidence.positions]
    for other, (other_numeric, other_tolerance) in evidence.others.items():
        if fits(other_numeric, analytic, tolerance + other_tolerance, wrong):
            return Diagnosis(f"the gradient of {other}", swapped_hint(name, other), swapped_with=other, kind="swapped")
    for layout in layouts(name, evidence.shape):
        # The implied value comes from another element's analytic side: its rounding counts twice.
        if fits(layout.implied(evidence.analytic, evidence.positions), numeric, 2 * tolerance, wrong):
            return Diagnosis(
                layout.summary, layout.hint,
                implied=lambda positions, layout=layout: layout.implied(evidence.analytic, positions, wrap=True),
                kind=layout.kind,
            )  # fmt: skip
    return None


def _rounded_to_float32(analytic: np.ndarray, numeric: np.ndarray, error: np.ndarray) -> bool:
    """Whether wrong elements are float32 values off by no more than float32 rounding (a float64
    tensor's gradient computed in float32: its last digits fail, no factor or pattern explains them)."""
    if not len(analytic) or not np.all(np.isfinite(numeric)):
        return False
    with np.errstate(over="ignore"):  # beyond float32's range: inf, not equal, not rounded
        exact = np.all(analytic.astype(np.float32).astype(np.float64) == analytic)
    rounding = float(np.finfo(np.float32).eps) * np.abs(numeric) + 2 * error
    return bool(exact and np.all(np.abs(analytic - numeric) <= rounding))


def _constant_ratio(a: np.ndarray, n: np.ndarray, error: np.ndarray, floor: np.ndarray) -> float | None:
    """The least-squares ratio a/n if every element agrees with it within its error bar."""
    # Scaled by the largest element, so gradients near 1e300 (or 1e-300) neither overflow nor underflow.
    size = float(np.max(np.abs(n))) if n.size else 0.0
    if size == 0 or not np.isfinite(size):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        nn = float((n / size) @ (n / size))
        ratio = float((a / size) @ (n / size)) / nn
    if not np.isfinite(ratio):
        return None
    consistent = np.abs(a - ratio * n) <= 2 * (abs(ratio) * error + floor) + 1e-6 * np.abs(ratio * n)
    return ratio if np.all(consistent) else None


def _is_integer(value: float) -> int | None:
    if not np.isfinite(value):  # 1 / ratio for a subnormal ratio
        return None
    k = round(value)
    return int(k) if k != 0 and abs(value - k) <= EXACT * abs(value) else None


def _number(ratio: float) -> str:
    """A factor as read: "2.00x", "0.0312x"; one within a percent of 1 with the digits that show it
    is not 1 ("1.003x", "1.000000015x"), since a wrong gradient was measured off by that much.

    Examples
    --------
    >>> _number(2.0), _number(1.003), _number(-1.000000015), _number(1e-4)
    ('2.00x', '1.003x', '-1.000000015x', '0.0001x')
    """
    off = abs(abs(ratio) - 1)
    if 0 < off < 0.01:
        places = min(15, int(np.ceil(-np.log10(off))) + 1)
        text = f"{ratio:.{places}f}".rstrip("0")
        return f"{text}x"
    return f"{ratio:.2f}x" if 0.1 <= abs(ratio) < 1000 else f"{ratio:.3g}x"


def _factor(name: str, ratio: float, batch_size: int | None) -> tuple[str, str]:
    """Summary and hint for a constant analytic/numeric ratio."""
    if abs(ratio + 1) < EXACT:
        return "sign flipped", f"{name} has the wrong sign: look for a flipped subtraction (y - a for a - y)."
    sign = "the wrong sign and " if ratio < 0 else ""
    subject = f"{name} has the wrong sign and" if ratio < 0 else name
    size = abs(ratio)
    m = batch_size
    if m and abs(size * m - 1) <= EXACT:
        return (
            f"{ratio:.4g}x (= 1/m, m={m})",
            f"{name} has {sign}1/m (m={m}) of the numerical gradient: the mean over the batch is taken twice, "
            "or the loss sums over the batch while the gradient averages.",
        )
    if m and m > 1 and abs(size - m) <= EXACT * m:
        return (
            f"{ratio:.4g}x (= m, m={m})",
            f"{subject} is m={m} times too large: look for a missing 1/m (the loss averages over the batch, "
            "the gradient sums).",
        )
    whole, inverse = _is_integer(size), _is_integer(1 / size) if size else None
    if whole and whole >= BATCH_LIKE:
        return (
            f"{ratio:.4g}x (= {whole})",
            f"{subject} is {whole} times too large: a missing 1/m with a batch of m={whole}? "
            "(pass batch_size= to name m)",
        )
    if inverse and inverse >= BATCH_LIKE:
        return (
            f"{ratio:.4g}x (= 1/{inverse})",
            f"{name} has {sign}1/{inverse} of the numerical gradient: a mean over {inverse} items (the batch?) "
            "taken twice? (pass batch_size= to name m)",
        )
    if whole and whole > 1:
        return (
            _number(ratio),
            f"{subject} is exactly {size:.2f}x the numerical gradient: look for a duplicated term, "
            f"a wrong constant (e.g. {whole}./m instead of 1./m) or a missing 1/{whole}.",
        )
    fraction = Fraction(size).limit_denominator(8)
    if abs(float(fraction) - size) <= EXACT * size and fraction not in (0, 1):
        # 1/8 reads "0.125x (= 1/8)", not "0.13x", which is no fraction a reader would look for.
        rounded = float(f"{size:.2f}") != float(fraction)
        return (
            f"{ratio:.4g}x (= {'-' if ratio < 0 else ''}{fraction})" if rounded else _number(ratio),
            f"{subject} is {fraction} of the numerical gradient: look for a dropped term or a wrong constant "
            f"(a stray {fraction}).",
        )
    return (
        _number(ratio),
        f"{subject} is a constant {_number(size)} the numerical gradient: look for a wrong scale factor.",
    )


def _paren(text: str) -> str:
    return f" ({text})" if text else ""


def _comma(text: str) -> str:
    return f", {text}" if text else ""


def _at(where: str) -> str:
    return f" ({where})" if where else ""


def _element(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(tuple(int(i) for i in index))


def locate(shape: tuple[int, ...], flat: np.ndarray) -> str:
    """Where the given elements (flat positions) are: "all in row 2", "all in columns 0, 3", "elements 1, 4", ""."""
    if not len(shape) or not len(flat):
        return ""
    indices = np.stack(np.unravel_index(flat, shape), axis=1)
    named = [_element(tuple(i)) for i in indices.tolist()]
    if len(flat) <= min(LINES, NAMED) or len(shape) == 1:
        if len(flat) <= NAMED:
            return ("element " if len(flat) == 1 else "elements ") + ", ".join(named)
        return ""
    best = None
    for axis, length in enumerate(shape):
        lines = np.unique(indices[:, axis])
        # A few lines, or a run of them (rows 0-3 of 8: a slice bound off).
        run = len(lines) > LINES and int(lines[-1] - lines[0]) + 1 == len(lines)
        if len(lines) < length and (len(lines) <= LINES or run) and (best is None or len(lines) < len(best[1])):
            best = (axis, lines)
    if best is not None:
        axis, lines = best
        run = len(lines) > LINES
        numbers = f"{int(lines[0])}-{int(lines[-1])}" if run else ", ".join(str(int(i)) for i in lines)
        plural = "s" if len(lines) > 1 else ""
        if len(shape) == 2:
            return f"all in {('row', 'column')[axis]}{plural} {numbers}"
        slots = [":"] * len(shape)
        slots[axis] = f"{int(lines[0])}:{int(lines[-1]) + 1}" if run else numbers if len(lines) == 1 else "{" + numbers + "}"
        return f"all in [{', '.join(slots)}]"
    if len(flat) <= NAMED:
        return "elements " + ", ".join(named)
    return ""


def only_at_low_precision(diagnosis: Diagnosis, name: str, dtype: str, precise_agrees: bool) -> Diagnosis:
    """A failure that the same backward in float64 does not show: the low-precision arithmetic is
    what is wrong (an overflow, a cancellation, a branch on the dtype), not the formula."""
    if not precise_agrees:
        return diagnosis
    return Diagnosis(
        f"{diagnosis.summary}, in {dtype} only",
        f"{name}'s backward agrees with the numerical gradient when run in float64 but not in {dtype}: look for "
        f"an overflow, a cancellation or a branch on the dtype in the {dtype} arithmetic.",
        diagnosis.scale,
        kind=diagnosis.kind,
    )

