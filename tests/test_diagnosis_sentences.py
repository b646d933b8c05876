"""Every sentence a diagnosis prints agrees with the numbers beside it.

Hypothesis draws tensors of 1 to 4 axes and a planted pattern (a factor on all or some elements,
a zeroed or rearranged gradient, scattered errors, a correct gradient with a few noisy or kinked
elements), builds the per-element codes the judge would give, and checks each summary and hint
`diagnose` returns against those codes and values: counts, named elements, factors, layouts.
"""

import re
from itertools import takewhile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradprobe.judge._diagnosis import KINDS, diagnose
from gradprobe.judge._hypotheses import Evidence
from gradprobe.judge._verdict import FAIL, KINK, NOISE, PASS

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

    if "right except at" in d.hint:
        named = int(re.search(r"right except at (\d+) element", d.hint).group(1))
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
        assert "wrong" not in d.summary and "right except" not in d.hint, text
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
