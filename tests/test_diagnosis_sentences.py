"""Every sentence a diagnosis prints agrees with the numbers beside it.

Hypothesis draws tensors of 1 to 4 axes and a planted pattern (a factor on all or some elements,
a zeroed or rearranged gradient, scattered errors, a correct gradient with a few noisy or kinked
elements), builds the per-element codes the judge would give, and checks each summary and hint
`diagnose` returns against those codes and values: counts, named elements, factors, layouts; and
the `Finding`'s fields the same way. Then it draws findings of every kind, scope and status any
strategy gives, renders the report, and checks each sentence against the fields it came from.
"""

import re
from itertools import takewhile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradprobe.judge._diagnosis import KINDS, diagnose, locate
from gradprobe.judge._hypotheses import Evidence
from gradprobe.judge._verdict import FAIL, KINK, NOISE, NONFINITE, PASS
from gradprobe.report._sentences import factor_summary, minority
from gradprobe.report._types import Finding, Report, TensorReport

BAR = 1e-9
PATTERNS = ("right", "factor", "some factor", "zeros", "scattered", "transpose", "reverse", "roll", "noisy", "kinks")


@st.composite
def cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    size = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    numeric = rng.standard_normal(size) + np.where(rng.random(size) < 0.5, 1.0, -1.0)  # clear of 0
    pattern = draw(st.sampled_from(PATTERNS))
    analytic = numeric.copy()
    some = rng.random(size) < draw(st.floats(0.05, 0.95))
    codes = np.full(size, PASS, dtype=np.int8)
    if pattern == "factor":
        analytic *= draw(st.sampled_from([2.0, 0.5, -1.0, 32.0, 1 / 32, 3.0]))
    elif pattern == "some factor":
        analytic[some] *= draw(st.sampled_from([2.0, -1.0, 0.0]))
    elif pattern == "zeros":
        analytic[:] = 0.0
    elif pattern == "scattered":
        analytic[some] += rng.standard_normal(int(some.sum()))
    elif pattern == "transpose" and len(shape) >= 2:
        order = tuple(rng.permutation(len(shape)))
        if tuple(shape[i] for i in order) == shape:
            analytic = numeric.reshape(shape).transpose(order).ravel().copy()
    elif pattern == "reverse":
        analytic = np.flip(numeric.reshape(shape), int(rng.integers(len(shape)))).ravel().copy()
    elif pattern == "roll":
        analytic = np.roll(numeric.reshape(shape), 1, int(rng.integers(len(shape)))).ravel().copy()
    elif pattern == "noisy":
        codes[some] = NOISE
    elif pattern == "kinks":
        codes[some] = KINK
    codes[np.abs(analytic - numeric) > 4 * BAR] = FAIL
    return shape, analytic, numeric, codes


def _element_indices(text: str, shape: tuple[int, ...]) -> list[int] | None:
    """Flat positions of the elements a sentence names ("elements 1, 4", "element (0, 2)"), if any."""
    found = re.search(r"elements? (\(?\d.*)", text)
    if not found:
        return None
    named = re.findall(r"\(([\d, ]+)\)", found.group(1)) if found.group(1).startswith("(") else []
    if not named:  # 1-D: plain numbers up to the first token that is not one ("2.00x")
        tokens = found.group(1).replace(")", ",").split(", ")
        named = list(takewhile(str.isdigit, tokens))
    return [int(np.ravel_multi_index(tuple(int(k) for k in t.split(",")), shape)) for t in named]


@settings(max_examples=400, deadline=None)
@given(cases())
def test_every_sentence_agrees_with_its_codes_and_values(case):
    shape, analytic, numeric, codes = case
    size, wrong = codes.size, int(np.sum(codes == FAIL))
    bars = np.full(size, BAR)
    evidence = Evidence(shape, analytic, np.arange(size), {})
    d = diagnose("w", shape, analytic, numeric, bars, bars, codes, 32, evidence=evidence, reason="noise")
    text = f"{d.summary} | {d.hint}"

    if "disagrees with the numerical gradient at" in d.hint:
        named = int(re.search(r"numerical gradient at (\d+) element", d.hint).group(1))
        assert named == wrong and named < size, text
    if (counted := re.match(r"(\d+) of (\d+) wrong", d.summary)) is not None:
        assert (int(counted.group(1)), int(counted.group(2))) == (wrong, size), text
    if (indices := _element_indices(d.summary, shape)) is not None and "wrong" in d.summary:
        assert all(codes[i] == FAIL for i in indices), text
    if d.summary.startswith("all zeros"):
        assert not np.any(analytic), text
    if d.scale is not None and wrong:
        # The factor holds at every wrong element (the others are right, or both sides ~0).
        assert np.allclose(analytic[codes == FAIL], d.scale * numeric[codes == FAIL], rtol=1e-3, atol=1e-6), text
    if d.summary == "sign flipped":
        assert np.allclose(analytic, -numeric), text
    if d.summary.startswith(("transposed", "axes permuted", "reversed along", "shifted by")):
        assert wrong >= 2, text
    if wrong == 0:
        # Undecided tensors: never a sentence about wrong elements.
        assert "wrong" not in d.summary and "numerical gradient except" not in d.hint, text
    # The kind (the field code reads) and the sentence (what people read) say the same.
    assert d.kind in KINDS, text
    said = {
        "zeros": d.summary.startswith("all zeros"), "sign": d.summary == "sign flipped",
        "factor": d.scale is not None and d.summary.endswith(("x", ")")), "transposed": d.summary == "transposed",
        "permuted": d.summary.startswith("axes permuted"), "reversed": d.summary.startswith("reversed along"),
        "shifted": d.summary.startswith("shifted by"),
        "elements": re.match(r"\d+ of \d+ wrong", d.summary) is not None and "formula" not in d.hint,
        "formula": re.fullmatch(r"\d+ of \d+ wrong", d.summary) is not None and "formula" in d.hint,
        "kinks": "kink" in d.summary,
        "noise": d.summary.startswith("too noisy"), "should_be_zero": d.summary == "should be zero",
        "rounded": d.summary == "rounded to float32", "loss_nonfinite": d.summary.startswith("loss NaN/inf"),
    }
    assert said.get(d.kind, True), text


# --- The facts: `diagnose` fills a Finding's fields from the codes and values alone. ------------


@settings(max_examples=300, deadline=None)
@given(cases())
def test_every_fact_agrees_with_the_codes_and_values(case):
    shape, analytic, numeric, codes = case
    bars = np.full(codes.size, BAR)
    evidence = Evidence(shape, analytic, np.arange(codes.size), {})
    f = diagnose("w", shape, analytic, numeric, bars, bars, codes, 32, evidence=evidence, reason="noise").finding
    wrong = np.flatnonzero(codes == FAIL)
    about = {"loss_nonfinite": NONFINITE, "kinks": KINK, "noise": NOISE}.get(f.kind, FAIL)
    concerned = np.flatnonzero(codes == about)
    if f.count is not None:
        assert (f.count, f.judged) == (len(concerned), codes.size), f
    assert set(f.indices) <= {tuple(int(i) for i in np.unravel_index(p, shape)) for p in concerned}, f
    if f.indices:
        assert len(f.indices) == f.count, f
    if f.where:
        assert f.where == locate(shape, concerned), f
    if f.kind in ("factor", "sign", "zeros"):
        assert np.allclose(analytic[wrong], f.factor * numeric[wrong], rtol=1e-3, atol=1e-6), f
    if f.kind == "elements" and f.factor is not None:
        assert np.allclose(analytic[wrong], f.factor * numeric[wrong], rtol=1e-3, atol=1e-6), f
    if f.kind in ("transposed", "permuted"):
        assert np.allclose(analytic.reshape(shape), numeric.reshape(shape).transpose(f.axes)), f
    if f.kind == "reversed":
        assert np.allclose(analytic.reshape(shape), np.flip(numeric.reshape(shape), f.axes or f.axis)), f
    assert f.scope == "tensor" and f.dtype is None, f


# --- Complex tensors: held as (real, imaginary) parts, their findings speak of their elements. ---

COMPLEX_PATTERNS = ("right", "conjugate", "factor", "some conjugated", "some scaled", "transpose", "reverse")


@st.composite
def complex_cases(draw):
    """A complex tensor's true gradient `z` and a gradient `g` with a planted pattern, as the core
    holds them (parts along a last axis of 2), with the per-part codes the judge would give."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    size = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def clear_of_zero():
        return rng.standard_normal(size) + np.where(rng.random(size) < 0.5, 1.0, -1.0)

    z = clear_of_zero() + 1j * clear_of_zero()
    pattern = draw(st.sampled_from(COMPLEX_PATTERNS))
    some = rng.random(size) < draw(st.floats(0.05, 0.95))
    g = z.copy()
    if pattern == "conjugate":
        g = np.conj(z)
    elif pattern == "factor":
        g = draw(st.sampled_from([2.0, 0.5, -1.0, 1 / 32])) * z
    elif pattern == "some conjugated":
        g[some] = np.conj(z[some])
    elif pattern == "some scaled":
        g[some] *= 2
    elif pattern == "transpose" and len(shape) >= 2:
        order = tuple(rng.permutation(len(shape)))
        if tuple(shape[i] for i in order) == shape:
            g = z.reshape(shape).transpose(order).ravel().copy()
    elif pattern == "reverse":
        g = np.flip(z.reshape(shape), int(rng.integers(len(shape)))).ravel().copy()
    analytic = np.stack([g.real, g.imag], -1).ravel()
    numeric = np.stack([z.real, z.imag], -1).ravel()
    codes = np.where(np.abs(analytic - numeric) > 4 * BAR, FAIL, PASS).astype(np.int8)
    return shape, z, g, analytic, numeric, codes


@settings(max_examples=300, deadline=None)
@given(complex_cases())
def test_a_complex_tensors_finding_speaks_of_its_elements(case):
    shape, z, g, analytic, numeric, codes = case
    layout = (*shape, 2)
    bars = np.full(codes.size, BAR)
    evidence = Evidence(layout, analytic, np.arange(codes.size), {})
    d = diagnose("z", layout, analytic, numeric, bars, bars, codes, evidence=evidence, reason="noise", pairs=True)
    f, text = d.finding, f"{d.summary} | {d.hint}"
    wrong = np.flatnonzero(np.any(codes.reshape(-1, 2) == FAIL, axis=1))  # elements with a wrong part
    # Counts, indices and places are the complex tensor's elements, never its parts.
    if f.count is not None:
        assert (f.count, f.judged) == (len(wrong), z.size), text
    assert set(f.indices) <= {tuple(int(i) for i in np.unravel_index(p, shape)) for p in wrong}, text
    if f.where:
        assert f.where == locate(shape, wrong), text
    for pair in _numbers(d.summary) + _numbers(d.hint):
        assert pair == f"{len(wrong)} of {z.size}", text
    # "Conjugated" exactly when the gradient is the conjugate of the numerical one (and wrong).
    assert (f.kind == "conjugated") == (len(wrong) > 0 and np.allclose(g, np.conj(z))), text
    assert (d.summary == "conjugated") == (f.kind == "conjugated"), text
    if f.kind == "conjugated":
        assert "dL/dRe + i dL/dIm" in d.hint and "dL/dRe - i dL/dIm" in d.hint, text
        assert np.allclose(d.implied(np.arange(codes.size)), numeric), text  # what directions would confirm
    # Factors and layouts hold for the complex values, in the tensor's own axes.
    if f.kind in ("factor", "sign"):
        assert np.allclose(g[wrong], f.factor * z[wrong], rtol=1e-3), text
    if f.kind in ("transposed", "permuted"):
        assert len(f.axes) == len(shape) and np.allclose(g.reshape(shape), z.reshape(shape).transpose(f.axes)), text
    if f.kind == "reversed":
        assert f.axis < len(shape) and np.allclose(g.reshape(shape), np.flip(z.reshape(shape), f.axis)), text
    if not len(wrong):
        assert "wrong" not in d.summary, text


# --- The sentences: every combination of facts, rendered, says those facts and no others. ------

WRONG_KINDS = ("zeros", "should_be_zero", "rounded", "conjugated", "factor", "sign", "swapped", "transposed", "permuted",
               "reversed", "shifted", "elements", "formula", "not_localized")  # fmt: skip
UNDECIDED_KINDS = ("reference", "loss_nonfinite", "nondeterministic", "no_derivative", "kinks", "noise")
SCOPES = ("tensor", "throughout", "sampled", "located", "region", "probed", "budget")
#: The scopes each strategy gives a failing tensor's finding (undecided ones are always "tensor").
WRONG_SCOPES = {
    "tensor": WRONG_KINDS,
    "throughout": ("zeros", "should_be_zero", "conjugated", "factor", "sign", "swapped", "transposed", "permuted",
                   "reversed", "shifted", "elements", "formula"),
    "sampled": ("rounded", "conjugated", "factor", "sign", "should_be_zero", "transposed", "permuted", "reversed",
                "shifted", "elements"),
    "located": ("elements", "formula", "rounded", "factor", "sign"),
    "region": ("elements",),
    "probed": WRONG_KINDS[:-1],
    "budget": ("not_localized",),
}  # fmt: skip


@st.composite
def findings(draw):
    """A finding as some strategy could report it, with its tensor's shape and status."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    size = int(np.prod(shape))
    undecided = draw(st.booleans())
    scope = "tensor" if undecided else draw(st.sampled_from(SCOPES))
    kind = draw(st.sampled_from(UNDECIDED_KINDS if undecided else WRONG_SCOPES[scope]))
    judged = draw(st.integers(1, size)) if scope in ("sampled", "probed", "throughout", "region") else size
    count = draw(st.integers(0 if kind == "noise" else 1, judged))
    positions = np.sort(np.random.default_rng(draw(st.integers(0, 999))).choice(size, min(count, size), replace=False))
    facts = dict(kind=kind, scope=scope, count=count, judged=judged)
    if kind in ("elements", "loss_nonfinite", "kinks", "noise") or scope == "located":
        facts.update(where=locate(shape, positions), indices=tuple(np.unravel_index(p, shape) for p in positions)[:20])
    if scope == "region":
        facts["where"] = "all in row 0"
    if kind in ("factor", "elements") or (scope == "located" and count == 1):
        facts["factor"] = draw(st.one_of(st.none(), st.sampled_from([2.0, 0.5, 32.0, 1 / 32, 0.0, -1.0, 1.003, -3.0])))
    if kind == "factor" and facts["factor"] is None or kind == "factor" and facts["factor"] in (0.0, -1.0):
        facts["factor"] = 2.0
    facts.update({"sign": dict(factor=-1.0), "zeros": dict(factor=0.0), "swapped": dict(other="b"),
                  "transposed": dict(axes=(1, 0)), "permuted": dict(axes=(1, 0, 2)), "reversed": dict(axis=0),
                  "shifted": dict(axis=0, shift=draw(st.sampled_from([1, -1]))),
                  "nondeterministic": dict(spread=0.25),
                  "noise": dict(resolution=0.15 if count == 0 else None)}.get(kind, {}))  # fmt: skip
    if not undecided and draw(st.booleans()) and kind not in ("not_localized",):
        facts["dtype"] = "float32"
    if not undecided and scope == "tensor" and draw(st.booleans()):
        facts["against"] = "jvp"  # oracle='forward' through the user's own jvp rules
    facts["batch_size"] = draw(st.sampled_from([None, 32]))
    status = "inconclusive" if undecided else "fail"
    return shape, status, Finding(**facts)


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+ of \d+", text)


@settings(max_examples=1500, deadline=None)
@given(findings())
def test_every_sentence_of_every_finding_says_its_facts(case):
    shape, status, f = case
    tensor = TensorReport(name="w", shape=shape, status=status, difference=0.5, resolution=1e-3, finding=f)
    report = Report(status=status, difference=0.5, resolution=1e-3, nfev=10, tensors={"w": tensor})
    summary, hint = tensor.diagnosis, tensor.hint
    text = f"{summary} | {hint}"
    own = "" if f.dtype or f.against else hint  # float32-only and own-jvp findings have their own hint

    # Well-formed: nothing unfilled, nothing said twice, one sentence that ends.
    unfilled = text.replace(f.where, "") if f.where else text  # "[:, {0, 2}]" names axis slots
    assert "None" not in text and "{" not in unfilled and "  " not in text and hint.endswith((".", ")", "?")), text
    assert "which is with" not in text and "which are with" not in text, text  # once: "which is with the wrong sign"
    assert (tensor.diagnosis_kind, tensor.scale) == (f.kind, f.factor if f.kind in ("factor", "sign", "zeros") else None)
    # Counts: "k of n" is always count of judged.
    for pair in _numbers(summary) + _numbers(hint):
        assert pair == f"{f.count} of {f.judged}", text
    # "Disagrees ... at": only for a minority of elements, all of the tensor judged, with their count.
    if "disagrees with the numerical gradient at" in hint:
        assert f.scope in ("tensor", "located") and f.count < f.judged and f.judged == int(np.prod(shape)), text
        said = re.search(r"numerical gradient at (\d+) element", hint)
        assert said is None or int(said.group(1)) == f.count, text
    if f.kind == "elements" and f.scope == "tensor":
        assert ("disagrees with the numerical gradient at" in hint) == (minority(f) and not f.dtype and not f.against), text
    # Scope: what was not probed whole is said of what was.
    assert ("throughout" in summary) == (f.scope == "throughout" and f.kind not in ("zeros", "elements")), text
    if f.scope == "sampled" or (f.scope == "throughout" and f.count is not None):
        assert f"{f.count} of {f.judged} sampled elements wrong" in summary, text
    if f.scope in ("probed", "region"):
        assert f"{f.count} of {f.judged} probed wrong" in summary, text
    if f.scope == "sampled" and f.kind != "elements":
        ending = f"at the sampled elements ({f.count} of {f.judged} sampled elements wrong)"
        assert summary.removesuffix(", in float32 only").endswith(ending), text
        assert hint.startswith("at the elements sampled,") or f.dtype, text
    # Precision: a finding in float32 only says so, and blames the float32 arithmetic.
    assert summary.endswith(", in float32 only") == (f.dtype == "float32"), text
    # A reference that ran the user's own jvp: both sides named, neither blamed.
    assert (", backward or jvp wrong" in summary) == (f.against == "jvp"), text
    if f.against:
        assert "one of them is wrong" in hint, text
    elif f.dtype:
        assert "float64 but not in float32" in hint, text
    # The factor shown is the factor, the layout the layout, the other tensor the other.
    if f.kind == "factor":
        assert factor_summary(f.factor, f.batch_size) in summary and f.factor != -1, text
    if f.kind == "sign":
        assert "sign flipped" in summary and (not own or "wrong sign" in own), text
    if f.kind == "permuted":
        assert str(f.axes) in summary and (not own or str(f.axes) in own), text
    if f.kind in ("reversed", "shifted"):
        assert f"axis {f.axis}" in summary and (not own or f"axis {f.axis}" in own), text
    if f.kind == "shifted":
        assert f"shifted by {f.shift}" in summary, text
    if f.kind == "swapped":
        assert "the gradient of b" in summary and (not own or "b's" in own), text
    if f.kind == "nondeterministic":
        assert "2.5e-01" in hint, text
    # Where: said wherever the summary places elements.
    if f.where and f.kind in ("elements", "loss_nonfinite") and f.scope in ("tensor", "region", "located", "probed"):
        assert f.where in summary or (f.scope == "located" and f.count == 1), text
    # Kind words: each kind's own words, and never another's.
    words = {"zeros": "all zeros", "should_be_zero": "should be zero", "rounded": "rounded to float32",
             "transposed": "transposed", "permuted": "axes permuted", "reversed": "reversed along",
             "shifted": "shifted by", "loss_nonfinite": "loss NaN/inf", "nondeterministic": "non-deterministic",
             "no_derivative": "no derivative", "not_localized": "not localized",
             "reference": "reference differs from the loss", "conjugated": "conjugated"}  # fmt: skip
    for kind, word in words.items():
        assert (word in summary) == (kind == f.kind), (kind, text)
    if f.kind == "kinks":
        assert "kink" in summary, text
    if f.kind == "noise":
        assert summary.startswith("too noisy"), text
    # The report's renderers say the same: the text's row and hint line, the JSON's fields.
    rendered = str(report)
    assert summary in rendered and f"hint: {hint}" in rendered, rendered
    data = report.to_dict()["tensors"][0]
    assert (data["diagnosis"], data["hint"], data["diagnosis_kind"]) == (summary, hint, f.kind)
    assert data["finding"]["count"] == f.count and data["finding"]["scope"] == f.scope


def test_one_located_element_with_the_wrong_sign_reads_plainly():
    finding = Finding(kind="elements", scope="located", count=1, judged=12, where="element 3", factor=-1.0)
    tensor = TensorReport(name="w", shape=(12,), status="fail", difference=0.5, resolution=1e-3, finding=finding)
    assert tensor.hint == "w disagrees with the numerical gradient at element 3, with the wrong sign: look for an indexing or boundary slip there."
