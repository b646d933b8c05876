"""How is a tensor wrong? Patterns read off the analytic and numerical values already measured.

`diagnose` looks, in this order, for: NaN/inf in the loss near the point, an all-zero gradient,
the conjugate of a complex tensor's gradient (the other framework's convention),
one constant factor across the tensor (2.00x, 0.25x, 1/m, sign flipped), another tensor's gradient,
a transpose or another rearrangement (`_hypotheses`), failures only at non-differentiable points,
and failures confined to some rows, columns or elements (named, with their own factor when they
share one). A gradient where the loss is flat "should be zero". Tensors that are inconclusive get
a diagnosis too (too noisy, at kinks, no derivative at this precision).

What is found is a `Finding` of facts (kind, counts, where, factor, layout); its sentences are
rendered from those facts alone, in ``report/_sentences.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from ..estimate._differences import rms
from ..params._complex import element_positions
from ..report._sentences import EXACT, minority
from ..report._types import NAMED_INDICES, Finding
from ._hypotheses import Evidence, fits, layouts
from ._verdict import FAIL, KINK, NOISE, NONFINITE, PASS

#: Elements named one by one at most; more are summarised by their rows or columns.
NAMED = 5
#: Rows or columns named at most.
LINES = 3

#: The kinds of diagnosis: how a tensor is wrong, or why it is undecided (`Finding.kind`).
KINDS = (
    "zeros", "should_be_zero", "rounded", "conjugated", "factor", "sign", "swapped", "transposed", "permuted",
    "reversed", "shifted", "elements", "formula", "not_localized", "reference", "loss_nonfinite", "nondeterministic",
    "no_derivative", "kinks", "noise",
)  # fmt: skip


@dataclass(frozen=True)
class Diagnosis:
    """A tensor's `finding` (the facts its sentences are rendered from) with the tensor's `name`.

    A hypothesis about the whole tensor read off some of its elements (a factor, a rearrangement)
    says what it implies for the rest, so that random directions can confirm it: `implied` maps
    flat positions of the tensor to the true gradient there.
    """

    name: str
    finding: Finding
    implied: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return self.finding.kind

    @property
    def summary(self) -> str:
        return self.finding.summary

    @property
    def hint(self) -> str:
        return self.finding.hint(self.name)

    @property
    def scale(self) -> float | None:
        return self.finding.scale


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
    positions: np.ndarray | None = None,
    reason: str | None = None,
    tensor_resolution: float | None = None,
    ragged: bool = False,
    repeat_spread: float = 0.0,
    evidence: Evidence | None = None,
    pairs: bool = False,
    dtype: np.dtype | None = None,
) -> Diagnosis:
    """Name the shape of a failure from a tensor's flat values and per-element outcome codes.

    Parameters
    ----------
    name, shape : the tensor's name and shape.
    analytic, numeric, error, floor : flat arrays: the user's gradient, the numerical one, its
        error bar and the analytic side's rounding floor.
    codes : flat per-element outcomes (indices into ``ELEMENT_STATUSES``).
    batch_size : the m of 1/m, when the user gave it.
    positions : the flat positions in the tensor of the values given (every element, in order,
        when None); where wrong elements lie is said of these.
    reason, tensor_resolution : for an inconclusive tensor, why (``"noise"``, ``"kink"``...) and
        its resolution.
    ragged : the loss has no derivative at this precision (it varies like noise at every scale).
    repeat_spread : how much identical calls of the loss differ (0: deterministic).
    evidence : for layout hypotheses (transposed, permuted or reversed axes, a shift, another
        tensor's gradient): the whole tensor's analytic gradient and where the given values lie in it.
    pairs : the tensor is complex, held as (real, imaginary) parts along the last axis of `shape`
        (`params._complex`): the values are its parts, what is said is about its elements.
    dtype : the tensor's own dtype (its parts' for a complex one); "rounded to float32" is said only
        of a tensor finer than float32 (float64 when not given).

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
    positions = np.arange(codes.size) if positions is None else np.asarray(positions)
    grid = _Grid(shape, pairs)
    tolerance = 2 * error + floor
    wrong = codes == FAIL
    # (A NaN or inf in the gradient never gets here: it is an error before any work, naming the elements.)
    if not wrong.any():
        return Diagnosis(name, _undecided(grid, positions, codes, reason, tensor_resolution, ragged, repeat_spread))
    count, judged = grid.count(positions[wrong]), grid.count(positions)

    def found(kind: str, implied: Callable | None = None, **facts) -> Diagnosis:
        return Diagnosis(name, Finding(kind, count=count, judged=judged, **facts), implied)

    usable = np.isfinite(numeric) & (codes != KINK) & (codes != NONFINITE)
    if not np.any(analytic) and np.any(np.abs(numeric[usable]) > tolerance[usable]):
        return found("zeros", factor=0.0)
    if _coarse(analytic[usable], tolerance[usable]):
        # Bars as wide as the gradient itself (float32 next to a minimum) fit a pattern by chance:
        # a sign flip read as an axis reversed, 20x as "should be zero". Only where it is wrong is said.
        return Diagnosis(name, elements(grid.shape, grid.elements(positions[np.flatnonzero(wrong)]), judged))
    if np.any(analytic) and np.any(usable) and not np.any(np.abs(numeric[usable]) > tolerance[usable]):
        return found("should_be_zero", None if evidence is None else (lambda positions: np.zeros(len(positions))))
    # "Rounded to float32" speaks of a tensor finer than float32 (float64 by default); a float32
    # tensor's gradient is float32 by right.
    finer = dtype is None or np.finfo(dtype).eps < np.finfo(np.float32).eps
    if finer and _rounded_to_float32(analytic[wrong], numeric[wrong], error[wrong]):
        return found("rounded")
    if pairs and _conjugated(analytic[usable], numeric[usable], tolerance[usable], positions[usable]):
        implied = None if evidence is None else (lambda positions: evidence.analytic[positions] * _conjugation(positions))
        return found("conjugated", implied)
    ratio = _constant_ratio(analytic[usable], numeric[usable], error[usable], floor[usable])
    # Elements where both sides are ~0 (dead units) fit any ratio; count only the others. Elements
    # left undecided (too noisy at the finest step) that are off their numerical value beyond their
    # bars too are no evidence of a right part: a doubled gradient 1e-7 from an LJ cluster's minimum
    # had 10 of 21 elements wrong and 11 "too noisy", all 2.00x, and read "an indexing slip".
    significant = np.abs(numeric) > tolerance
    off = (codes == NOISE) & significant & (np.abs(analytic - numeric) > tolerance)
    if ratio is not None and count + np.count_nonzero(off) >= 0.5 * significant.sum():
        implied = None if evidence is None else (lambda positions: evidence.analytic[positions] / ratio)
        return found("sign" if abs(ratio + 1) < EXACT else "factor", implied, factor=ratio, batch_size=batch_size)
    if evidence is not None:
        analytic_there = evidence.analytic[evidence.positions]
        for other, (other_numeric, other_tolerance) in evidence.others.items():
            if fits(other_numeric, analytic_there, tolerance + other_tolerance, wrong):
                return found("swapped", other=other)
        for layout in layouts(evidence.shape, pairs=pairs):
            # The implied value comes from another element's analytic side: its rounding counts twice.
            if fits(layout.implied(evidence.analytic, evidence.positions), numeric, 2 * tolerance, wrong):
                implied = lambda positions, layout=layout: layout.implied(evidence.analytic, positions, wrap=True)  # noqa: E731
                axes = layout.order[: len(grid.shape)] if layout.order is not None else layout.flips or None
                return found(layout.kind, implied, axes=axes, axis=layout.axis, shift=layout.shift or None)
    flat_wrong = np.flatnonzero(wrong)
    # The wrong elements' own factor, if they share one (a slice scaled, zeroed or flipped); of a
    # complex element, both its parts (its real part may be right, its imaginary part not).
    whole = np.flatnonzero(np.isin(grid.elements(positions), grid.elements(positions[flat_wrong]))) if pairs else flat_wrong
    subset = _constant_ratio(analytic[whole], numeric[whole], error[whole], floor[whole])
    has_factor = subset is not None and abs(subset - 1) > EXACT
    facts = elements(grid.shape, grid.elements(positions[flat_wrong]), judged, factor=subset if has_factor else None,
                     batch_size=batch_size)  # fmt: skip
    # A slip leaves the rest of the tensor right: not shown where more of it is undecided than
    # passed (a hinge loss on its plateau, its mask forgotten: "2 of 4 wrong ... a slip").
    undecided = np.count_nonzero((codes == NOISE) | (codes == KINK)) > np.count_nonzero(codes == PASS)
    if not minority(facts) and not has_factor or undecided:
        facts = replace(facts, kind="formula", where="", indices=(), factor=None)
    return Diagnosis(name, facts)


#: Error bars whose RMS is above this fraction of the gradient's RMS leave its pattern unsaid.
COARSE_BARS = 0.5


def _coarse(analytic: np.ndarray, tolerance: np.ndarray) -> bool:
    """Whether the bars are too wide, beside the gradient, to tell one pattern from another."""
    return bool(analytic.size) and rms(tolerance) > COARSE_BARS * rms(analytic)


def elements(shape: tuple[int, ...], wrong: np.ndarray, judged: int, **facts) -> Finding:
    """The finding "these elements (flat positions `wrong` in a tensor of `shape`) of the `judged` are wrong"."""
    indices = () if len(wrong) > NAMED_INDICES else tuple(_index(shape, position) for position in wrong)
    return Finding("elements", count=len(wrong), judged=judged, where=locate(shape, wrong), indices=indices, **facts)


def _index(shape: tuple[int, ...], position: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(position), shape)) if shape else ()


@dataclass(frozen=True)
class _Grid:
    """What a finding's counts and places are about: a tensor's elements (of `shape`), also when
    its values are a complex tensor's parts (`pairs`: the last axis of `layout` holds them)."""

    layout: tuple[int, ...]
    pairs: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout[:-1] if self.pairs else self.layout

    def elements(self, positions: np.ndarray) -> np.ndarray:
        """The flat positions (in `shape`) of the elements the values at `positions` belong to."""
        return element_positions(positions) if self.pairs else positions

    def count(self, positions: np.ndarray) -> int:
        return len(self.elements(positions))


def _undecided(
    grid: _Grid,
    positions: np.ndarray,
    codes: np.ndarray,
    reason: str | None = None,
    tensor_resolution: float | None = None,
    ragged: bool = False,
    repeat_spread: float = 0.0,
) -> Finding:
    """An inconclusive tensor: why the numerical side could not decide."""

    def those(code: int, kind: str) -> Finding:
        at = np.flatnonzero(codes == code)
        return replace(elements(grid.shape, grid.elements(positions[at]), grid.count(positions)), kind=kind)

    if np.any(codes == NONFINITE):
        return those(NONFINITE, "loss_nonfinite")
    if ragged and repeat_spread > 0:
        return Finding("nondeterministic", spread=repeat_spread)
    if ragged:
        return Finding("no_derivative")
    if np.all(codes == KINK) or reason == "kink":
        return those(KINK, "kinks")
    if np.any(codes == NOISE):
        return those(NOISE, "noise")
    return Finding("noise", count=0, judged=grid.count(positions), resolution=tensor_resolution)


def _rounded_to_float32(analytic: np.ndarray, numeric: np.ndarray, error: np.ndarray) -> bool:
    """Whether wrong elements are float32 values off by no more than float32 rounding (a float64
    tensor's gradient computed in float32: its last digits fail, no factor or pattern explains them)."""
    if not len(analytic) or not np.all(np.isfinite(numeric)):
        return False
    with np.errstate(over="ignore"):  # beyond float32's range: inf, not equal, not rounded
        exact = np.all(analytic.astype(np.float32).astype(np.float64) == analytic)
    rounding = float(np.finfo(np.float32).eps) * np.abs(numeric)
    # Bars wider than float32's rounding cannot tell it: a float64 value left with a few digits by
    # a cancellation (a residual 1e-14 of terms near 1) is a float32 value too, by chance.
    sharp = np.all(error <= rounding)
    return bool(exact and sharp and np.all(np.abs(analytic - numeric) <= rounding + 2 * error))


def _conjugation(positions: np.ndarray) -> np.ndarray:
    """Per value of a complex tensor's parts, what conjugating the element does to it: 1 for a real
    part, -1 for an imaginary part."""
    return np.where(np.asarray(positions) % 2, -1.0, 1.0)


def _conjugated(analytic: np.ndarray, numeric: np.ndarray, tolerance: np.ndarray, positions: np.ndarray) -> bool:
    """Whether a complex tensor's gradient (its parts at `positions`) is the numerical one
    conjugated: the imaginary parts negated, the real parts right, within the tolerance."""
    return bool(np.all(np.abs(analytic * _conjugation(positions) - numeric) <= tolerance))


#: Relative slack a constant ratio is allowed on each element beyond its error bars.
RATIO_SLACK = 1e-6


#: Error bars further apart than this make `_constant_ratio` weigh each element by its bar.
WEIGHTED_SPREAD = 100.0
#: A fitted ratio within its bars of a fraction with at most this denominator is that fraction.
PLAIN_DENOMINATOR = 16


def _constant_ratio(a: np.ndarray, n: np.ndarray, error: np.ndarray, floor: np.ndarray) -> float | None:
    """The least-squares ratio a/n if every element agrees with it within its error bar; where the
    bars differ by orders of magnitude, weighted by them (a noisy element, 3e-6 +- 1e-5 among five
    of 1.5e-7 +- 1e-7, once pulled a ratio of -1 to -0.04, and a sign flip read as an axis reversed)."""
    # Scaled by the largest element, so gradients near 1e300 (or 1e-300) neither overflow nor underflow.
    size = float(np.max(np.abs(n))) if n.size else 0.0
    if size == 0 or not np.isfinite(size):
        return None
    bars = error + floor
    spread = bars[bars > 0]
    weight = np.ones_like(n)
    if spread.size and np.max(spread) > WEIGHTED_SPREAD * np.min(spread):
        weight = np.min(spread) / np.maximum(bars, np.min(spread))
    with np.errstate(over="ignore", invalid="ignore"):
        nn = float((weight * n / size) @ (weight * n / size))
        ratio = float((weight * a / size) @ (weight * n / size)) / nn
    if not np.isfinite(ratio):
        return None
    # Near 1 the slack would absorb small scattered errors (three elements off by a few bars read
    # as a factor 1.0000000003): there every element must agree with the ratio within its bars, and
    # none with 1 (else "one element of two wrong" fits a factor as well).
    near_one = abs(ratio - 1) <= 10 * RATIO_SLACK

    def consistent(r: float) -> bool:
        # The bar scales with r (r times the numerical value carries r times its error), but never
        # below the element's own: it also holds the analytic side's rounding allowance (float32's),
        # which a factor below 1 does not shrink (a bias gradient 1/16 of the numerical one, in
        # float32, read "no constant factor ... fits within the error bars").
        tolerance = 2 * (max(abs(r), 1.0) * error + floor)
        return bool(np.all(np.abs(a - r * n) <= tolerance + (0.0 if near_one else RATIO_SLACK) * np.abs(r * n)))

    if near_one and np.any(np.abs(a - n) <= 2 * (error + floor)):
        return None
    if not consistent(ratio):
        return None
    # Wide bars (a noisy element weighed down, bfloat16's rounding) leave -1.01 as consistent as -1,
    # or 1.51 as 3/2: the plain factor is what to look for.
    plain = float(Fraction(ratio).limit_denominator(PLAIN_DENOMINATOR))
    return plain if plain not in (0.0, 1.0) and abs(plain - ratio) <= 0.05 * abs(ratio) and consistent(plain) else ratio


def _element(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(tuple(int(i) for i in index))


def lines_holding(shape: tuple[int, ...], flat: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(axis, indices along it): the few lines of one axis (rows, columns, N-D slices) that hold
    every given element, or a run of them (rows 0-3 of 8: a slice bound off); None if none."""
    if len(shape) < 2 or not len(flat):
        return None
    indices = np.stack(np.unravel_index(flat, shape), axis=1)
    best = None
    for axis, length in enumerate(shape):
        lines = np.unique(indices[:, axis])
        run = len(lines) > LINES and int(lines[-1] - lines[0]) + 1 == len(lines)
        if len(lines) < length and (len(lines) <= LINES or run) and (best is None or len(lines) < len(best[1])):
            best = (axis, lines)
    return best


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
    best = lines_holding(shape, flat)
    if best is not None:
        return lines_text(shape, *best)
    if len(flat) <= NAMED:
        return "elements " + ", ".join(named)
    return ""


def lines_text(shape: tuple[int, ...], axis: int, lines: np.ndarray) -> str:
    """"all in row 2", "all in columns 0-3", "all in [:, {1, 4}, :]": the `lines` of `axis`."""
    run = len(lines) > LINES
    numbers = f"{int(lines[0])}-{int(lines[-1])}" if run else ", ".join(str(int(i)) for i in lines)
    if len(shape) == 2:
        return f"all in {('row', 'column')[axis]}{'s' if len(lines) > 1 else ''} {numbers}"
    slots = [":"] * len(shape)
    slots[axis] = f"{int(lines[0])}:{int(lines[-1]) + 1}" if run else numbers if len(lines) == 1 else "{" + numbers + "}"
    return f"all in [{', '.join(slots)}]"


def only_at_low_precision(diagnosis: Diagnosis, dtype: str, precise_agrees: bool) -> Diagnosis:
    """A failure that the same backward in float64 does not show: the low-precision arithmetic is
    what is wrong (an overflow, a cancellation, a branch on the dtype), not the formula."""
    if not precise_agrees:
        return diagnosis
    return replace(diagnosis, finding=replace(diagnosis.finding, dtype=dtype))
