"""The sentences a `Finding` says: its `summary` for the table and its `hint` for the reader.

Every word of a diagnosis is rendered here from the finding's fields (kind, counts, where,
factor, layout, scope...), so a sentence cannot say more, or other, than the facts beside it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._types import Finding

#: Relative tolerance for calling a measured ratio an exact integer or fraction.
EXACT = 1e-3
#: A factor of at least this size that is an exact integer (or its reciprocal) is read as a batch
#: size rather than a hand-typed constant such as 2 or 4.
BATCH_LIKE = 10
#: Fractions named as such have a numerator and denominator up to this (3/2, 1/8, 5/4).
SMALL = 8
#: What two fresh random directions agreeing with a finding over the whole tensor add to it.
CONFIRMED = "2 random directions agree"


def summary(f: Finding) -> str:
    """The short text of the table's diagnosis column ("2.00x", "3 of 20 wrong (elements 1, 4, 7)")."""
    text = _scoped_summary(f)
    if f.against:
        text += f", backward or {f.against} wrong"
    return f"{text}, in {f.dtype} only" if f.dtype else text


def hint(f: Finding, name: str) -> str:
    """The one line that says where to look for the bug in tensor `name`."""
    if f.against:
        return (
            f"{name}'s backward disagrees with your own {f.against} rules, which gave the reference: one of them is "
            "wrong. Check the jvp against numerical derivatives with mode='forward', and the backward with the "
            "default oracle='differences'."
        )
    if f.dtype:
        return (
            f"{name}'s backward agrees with the numerical gradient when run in float64 but not in {f.dtype}: look "
            f"for an overflow, a cancellation or a branch on the dtype in the {f.dtype} arithmetic."
        )
    if f.scope == "sampled":
        if f.kind == "elements":
            said = {"sign flipped": "with the wrong sign", "zero": "zero"}.get(factor := _subset_factor(f), factor)
            which = f", all {said}" if factor else ""
            return (
                f"{name} is wrong at {f.count} of {f.judged} elements drawn at random{which} (the others were not "
                "probed one by one): compare its formula with the numerical values at the elements listed."
            )
        return f"at the elements sampled, {_hint(f, name)}"
    if f.scope == "region":
        return (
            f"{name}'s wrong elements lie {f.where.removeprefix('all ')}{_factor_clause(f)}, as far as bisection "
            "and sampling went (the tensor was not probed whole): look for an indexing or slicing slip there."
        )
    if f.scope == "throughout" and f.kind == "formula":
        return f"{name} is wrong across the tensor, and no constant factor fits within the error bars: recheck its formula."
    if f.scope == "throughout" and f.kind == "elements":
        if f.count == 0:  # the sampled elements all agree: too many wrong ones to follow, too few to hit
            return (
                f"{name} is wrong in more places than bisection follows, yet none of the {f.judged} elements sampled "
                "one by one is (those listed agree): too many wrong elements to follow, too few for a sample to hit "
                "(a row or a column of a large weight, say). Name them with strategy='full' (two to three evaluations "
                "per element)."
            )
        return f"{name} has many scattered wrong elements: look for a systematic indexing slip."
    if f.scope == "located" and f.kind in ("elements", "formula"):
        return _located_hint(f, name)
    if f.scope == "probed" and f.kind in ("elements", "formula"):
        return (
            f"{name} is wrong at {f.count} of the {f.judged} elements probed one by one{_paren(f.where)}; the rest "
            "of it was not probed so: compare its formula with the numerical values at the elements listed."
        )
    if f.scope == "probed":
        return f"at the elements probed, {_hint(f, name)}"
    return _hint(f, name)


def _scoped_summary(f: Finding) -> str:
    tally = f"{f.count} of {f.judged} sampled elements wrong" if f.count is not None else ""
    if f.scope == "throughout":
        if f.kind == "zeros":
            return f"all zeros ({tally})"
        if f.kind == "formula":
            return f"wrong throughout ({tally})"
        if f.kind == "elements":  # bisection found wrong blocks in too many places to follow
            return f"wrong in more places than bisection follows ({tally})"
        return f"{_summary(f)} throughout ({'; '.join(part for part in (tally, CONFIRMED) if part)})"
    if f.scope == "sampled":
        return tally + _paren(_subset_factor(f)) if f.kind == "elements" else f"{_summary(f)} at the sampled elements ({tally})"
    if f.scope == "region":  # of every element probed one by one: bisection's and the sample's
        return f"wrong elements {f.where}{_factor_clause(f)} ({f.count} of {f.judged} probed wrong)"
    if f.scope == "located":
        return _located_summary(f)
    if f.scope == "probed":  # some elements probed one by one, not all
        beyond = f", {f.suspects} beyond rounding" if f.suspects is not None else ""
        count = f"{f.count} of {f.judged} probed wrong{beyond}"
        if f.kind in ("elements", "formula"):
            return count + _paren(", ".join(part for part in (f.where, _subset_factor(f)) if part))
        return f"{_summary(f)} ({count})"
    return _summary(f)


def _summary(f: Finding) -> str:
    """The finding about the elements judged, as said of a tensor probed whole."""
    if f.kind in ("factor", "sign"):
        return factor_summary(f.factor, f.batch_size)
    if f.kind == "elements":
        return f"{f.count} of {f.judged} wrong{_paren(', '.join(part for part in (f.where, _subset_factor(f)) if part))}"
    if f.kind == "formula":
        return f"{f.count} of {f.judged} wrong"
    if f.kind == "swapped":
        return f"the gradient of {f.other}"
    if f.kind == "permuted":
        return f"axes permuted {f.axes}"
    if f.kind == "reversed":
        return f"reversed along axis {f.axis}" if f.axes is None else f"reversed along axes {f.axes}"
    if f.kind == "shifted":
        return f"shifted by {f.shift} along axis {f.axis}"
    if f.kind == "loss_nonfinite":
        return f"loss NaN/inf near {f.count} of {f.judged}{_comma(f.where)}"
    if f.kind == "kinks":
        return "every element at a kink" if f.count == f.judged else f"{f.count} of {f.judged} at kinks{_comma(f.where)}"
    if f.kind == "noise":
        if f.count:
            return f"too noisy at {f.count} of {f.judged}"
        return "too noisy" + (f" (resolution {f.resolution:.1e})" if f.resolution is not None else "")
    if f.kind == "not_localized":
        return "wrong; not localized within the budget" if f.scope == "budget" else "wrong, not localized"
    return _FIXED[f.kind]


_FIXED = {
    "zeros": "all zeros",
    "should_be_zero": "should be zero",
    "rounded": "rounded to float32",
    "conjugated": "conjugated",
    "transposed": "transposed",
    "nondeterministic": "non-deterministic loss",
    "no_derivative": "no derivative at this precision",
    "reference": "the float64 reference differs from the loss in its own precision",
}


def _located_summary(f: Finding) -> str:
    """Elements the directional strategy located one by one (the rest of the tensor not probed so)."""
    plural = "s" if f.count != 1 else ""
    if f.kind == "rounded":
        return f"rounded to float32 ({f.count} wrong element{plural} located)"
    if f.kind in ("factor", "sign"):  # the wrong elements found share a factor
        return f"{factor_summary(f.factor, f.batch_size)} at {f.count} wrong element{plural}{_paren(f.where)}"
    if f.kind == "formula":
        return f"{f.count} of {f.judged} elements wrong{_paren(f.where)}"
    return f"{f.count} wrong element{plural}{_paren(', '.join(part for part in (f.where, _subset_factor(f)) if part))}"


def _located_hint(f: Finding, name: str) -> str:
    if f.kind == "formula" or not f.count < f.judged:
        return (
            f"{name} is wrong at most of its elements with no factor or layout that holds throughout: recheck its "
            "formula."
        )
    which = _which(f)
    if f.count == 1:
        return f"{name} disagrees with the numerical gradient at {f.where or 'one element'}{which}: look for an indexing or boundary slip there."
    return f"{name} disagrees with the numerical gradient at {f.count} elements{_paren(f.where)}{which}: look for an indexing or boundary slip."


def _hint(f: Finding, name: str) -> str:
    """The hint for the finding about the elements judged."""
    if f.kind in ("factor", "sign"):
        return factor_hint(name, f.factor, f.batch_size)
    if f.kind == "elements":
        return _elements_hint(f, name)
    if f.kind == "formula":
        return f"{name} is wrong at {_most(f)}, and no constant factor, transpose or pattern fits within the error bars: recheck its formula."
    if f.kind == "loss_nonfinite":
        return (
            f"the loss becomes NaN or inf within a step of {name}{_paren(f.where)}: check at a point well inside its "
            "domain (log, sqrt, division), or clip the inputs."
        )
    if f.kind == "kinks" and f.count == f.judged:
        return (
            f"{name} looks non-differentiable at every element at the steps used: a kink at the point (relu inputs at "
            "exactly 0?), or a loss that rounds in steps there (residuals near zero, each a difference of large terms; "
            "a model trained to a tiny loss): check at a random point instead."
        )
    if f.kind == "kinks":
        return (
            f"{name} looks non-differentiable at {f.count} element(s){_paren(f.where)} at the steps used (a kink "
            "within the step, such as a relu input near 0, or a loss that rounds in steps there), where any value "
            "between the one-sided slopes is valid, so an error there up to half their jump could hide: check at a "
            "random point instead."
        )
    if f.kind == "not_localized" and f.scope == "budget":
        return (
            f"{name}'s gradient disagrees along random directions, and the budget ran out before bisection reached "
            "single elements: raise `budget` (or leave it out) to have the wrong elements named."
        )
    if f.kind == "noise" and not f.count:
        return (
            f"every element of {name} agrees within its error bar, but together the error bars could hide more "
            "than a tenth of its gradient: the loss's noise or rounding is large beside its changes here (near a "
            "minimum the gradient is tiny). Check farther from a minimum; make the loss deterministic, or evaluate it "
            "in float64, if it is not (a float64 run reads 'reference float64', and a note says why where it could "
            "not run)."
        )
    layout = _LAYOUT_HINTS.get(f.kind)
    if layout is not None:
        along = f"axis {f.axis}" if f.axes is None else f"axes {f.axes}"
        return f"{name} is the numerical gradient {layout.format(f=f, along=along)}"
    return _HINTS[f.kind].format(name=name, f=f)


_LAYOUT_HINTS = {
    "transposed": "transposed: swap the operands (e.g. X.T @ dZ for dZ @ X.T).",
    "permuted": "with its axes in the order {f.axes}: look for a transpose, permute or reshape of the wrong axes.",
    "reversed": (
        "reversed along {along}: a correlation where a convolution is meant (or the reverse), or a kernel "
        "that is not flipped back."
    ),
    "shifted": (
        "shifted by {f.shift} along axis {f.axis}: look for an off-by-one index (i + 1 for i) or a slice that "
        "starts one element early or late."
    ),
}

_HINTS = {
    "zeros": "{name}'s gradient is all zeros: is it detached, never accumulated, or overwritten by a fresh buffer?",
    "should_be_zero": (
        "the loss is flat along {name} here (its numerical gradient is zero within the error bars), but its "
        "gradient is not: a term that cancels in the loss (a bias before a normalisation, a mean that is "
        "subtracted) or a gradient meant for another parameter? At a minimum, where every right gradient is "
        "zero, any wrong term shows so."
    ),
    "rounded": (
        "{name}'s gradient is the numerical one rounded to float32 (every wrong element is a float32 value "
        "within a float32 rounding of it): a float32 array or cast in the gradient of float64 parameters? "
        "Compute it in float64."
    ),
    "conjugated": (
        "{name}'s gradient is the conjugate of the expected one: PyTorch's convention (and gp.check's) is "
        "dL/dRe + i dL/dIm, JAX's dL/dRe - i dL/dIm. Look for a conj() missing or extra, or a rule written for "
        "the other framework's convention."
    ),
    "swapped": (
        "{name}'s gradient is {f.other}'s numerical gradient: the two are swapped (or {f.other}'s is returned twice)."
    ),
    "nondeterministic": (
        "identical calls of the loss differ (by up to {f.spread:.1e}), which hides {name}'s gradient at every "
        "step tried: fix its random seed, put dropout layers in eval mode, or use deterministic kernels."
    ),
    "no_derivative": (
        "the loss varies like noise between neighbouring floating-point values of {name}, at every step tried "
        "(sin of 1e30, say, whose neighbouring floats are many periods apart): it has no derivative to compare "
        "at this precision; check at smaller parameter values or in higher precision."
    ),
    "noise": (
        "the loss's noise, rounding or jumps hide {name}'s gradient at {f.count} element(s): check farther from "
        "a minimum (where the gradient is tiny beside the loss's rounding), make the loss deterministic or "
        "evaluate it in float64 if it is not (a float64 run reads 'reference float64', and a note says why where "
        "it could not run), or, for a staircase (floor, round), check it away from its jumps."
    ),
    "not_localized": (
        "{name}'s gradient disagrees along random directions, but no single element stands out: the errors are "
        "small and spread, or the loss is not smooth here. Try strategy='full' on a smaller model."
    ),
    "reference": "{name}'s loss in float64 and in its own precision differ by more than rounding usually does (see the note): its disagreement in the low precision only proves nothing.",
}


def _which(f: Finding) -> str:
    """", which are 2.00x", ", with the wrong sign", or nothing: the wrong elements' shared factor."""
    factor = _subset_factor(f)
    if not factor:
        return ""
    if factor == "sign flipped":
        return ", with the wrong sign"
    return f", which {'is' if f.count == 1 else 'are'} {'zero' if factor == 'zero' else factor}"


def _elements_hint(f: Finding, name: str) -> str:
    said = {"sign flipped": "with the wrong sign", "zero": "zero"}.get(factor := _subset_factor(f), factor)
    if minority(f):
        which = _which(f)
        return (
            f"{name} disagrees with the numerical gradient at {f.count} element(s){_paren(f.where)}{which}: look for an indexing, slicing "
            "or boundary slip."
        )
    most = _most(f)
    if not factor:
        return f"{name} is wrong at {most}{_paren(f.where)}: recheck its formula there."
    # Many wrong elements, one factor among them: a term applied to the wrong part of the tensor.
    return (
        f"{name} is wrong at {most}{_paren(f.where)}, all {said}: look for a factor or mask applied to the wrong "
        "part of the tensor (a slice bound, a broadcast)."
    )


def _most(f: Finding) -> str:
    assert f.count is not None and f.judged is not None
    if f.count == f.judged:
        return "every element"
    return "most elements" if f.count > f.judged // 2 else f"{f.count} of its {f.judged} elements"


def minority(f: Finding) -> bool:
    """Whether the wrong elements are few enough to call the rest of the tensor right ("right except
    at"): a tensor wrong at every element, or at most of them, is no slip."""
    if f.count is None or f.judged is None or f.count >= f.judged:
        return False
    return bool(f.where) and f.count <= f.judged // 2 or f.count <= max(1, f.judged // 4)


def _subset_factor(f: Finding) -> str:
    """The wrong elements' shared factor, as said after where they are ("2.00x", "zero", "sign flipped")."""
    if f.factor is None or abs(f.factor - 1) <= EXACT:
        return ""
    if abs(f.factor + 1) < EXACT:
        return "sign flipped"
    if abs(f.factor) < EXACT:
        return "zero"
    return factor_summary(f.factor, f.batch_size)


def _factor_clause(f: Finding) -> str:
    return f", {factor}" if (factor := _subset_factor(f)) else ""


def _is_integer(value: float) -> int | None:
    if not math.isfinite(value):  # 1 / ratio for a subnormal ratio
        return None
    k = round(value)
    return int(k) if k != 0 and abs(value - k) <= EXACT * abs(value) else None


def number(ratio: float) -> str:
    """A factor as read: "2.00x", "0.0312x"; one within a percent of 1 with the digits that show it
    is not 1 ("1.003x", "1.000000015x"), since a wrong gradient was measured off by that much.

    Examples
    --------
    >>> number(2.0), number(1.003), number(-1.000000015), number(1e-4)
    ('2.00x', '1.003x', '-1.000000015x', '0.0001x')
    """
    off = abs(abs(ratio) - 1)
    if 0 < off < 0.01:
        places = min(15, math.ceil(-math.log10(off)) + 1)
        return f"{ratio:.{places}f}".rstrip("0") + "x"
    return f"{ratio:.2f}x" if 0.1 <= abs(ratio) < 1000 else f"{ratio:.3g}x"


def factor_summary(ratio: float | None, batch_size: int | None) -> str:
    """The summary of a constant analytic/numeric `ratio` ("2.00x", "sign flipped", "0.03125x (= 1/m, m=32)")."""
    assert ratio is not None
    return _factor(ratio, batch_size)[0]


def factor_hint(name: str, ratio: float | None, batch_size: int | None) -> str:
    assert ratio is not None
    return _factor(ratio, batch_size)[1].format(name=name)


def _factor(ratio: float, m: int | None) -> tuple[str, str]:
    """Summary and hint (with ``{name}`` left to fill) for a constant analytic/numeric ratio."""
    if abs(ratio + 1) < EXACT:
        return "sign flipped", "{name} has the wrong sign: look for a flipped subtraction (y - a for a - y)."
    sign = "the wrong sign and " if ratio < 0 else ""
    subject = "{name} has the wrong sign and" if ratio < 0 else "{name}"
    size = abs(ratio)
    if m and abs(size * m - 1) <= EXACT:
        return (
            f"{ratio:.4g}x (= 1/m, m={m})",
            f"{{name}} has {sign}1/m (m={m}) of the numerical gradient: the mean over the batch is taken twice, "
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
            number(ratio),
            f"{subject} is {whole} times too large: a missing 1/m with a batch of m={whole}? "
            "(pass batch_size= to name m)",
        )
    if inverse and inverse >= BATCH_LIKE:
        return (
            f"{ratio:.4g}x (= 1/{inverse})",
            f"{{name}} has {sign}1/{inverse} of the numerical gradient: a mean over {inverse} items (the batch?) "
            "taken twice? (pass batch_size= to name m)",
        )
    if whole and whole > 1:
        return (
            number(ratio),
            f"{subject} is exactly {size:.2f}x the numerical gradient: look for a duplicated term, "
            f"a wrong constant (e.g. {whole}./m instead of 1./m) or a missing 1/{whole}.",
        )
    fraction = Fraction(size).limit_denominator(SMALL)
    # A fraction someone types (3/2, 1/8): both parts small; 3223/7 is no constant to look for.
    if abs(float(fraction) - size) <= EXACT * size and fraction not in (0, 1) and fraction.numerator <= SMALL:
        # 1/8 reads "0.125x (= 1/8)", not "0.13x", which is no fraction a reader would look for.
        rounded = float(f"{size:.2f}") != float(fraction)
        missing = "a dropped term" if size < 1 else "an extra or duplicated term"
        return (
            f"{ratio:.4g}x (= {'-' if ratio < 0 else ''}{fraction})" if rounded else number(ratio),
            f"{subject} is {fraction} of the numerical gradient: look for {missing} or a wrong constant "
            f"(a stray {fraction}).",
        )
    return number(ratio), f"{subject} is a constant {number(size)} the numerical gradient: look for a wrong scale factor."


def _paren(text: str) -> str:
    return f" ({text})" if text else ""


def _comma(text: str) -> str:
    return f", {text}" if text else ""

