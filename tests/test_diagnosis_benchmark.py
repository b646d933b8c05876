"""The diagnosis benchmark's own judges: its matchers accept what each kind's diagnosis should say
and reject its neighbours, its bugs plant what they claim, and its contradiction finder flags
sentences the printed numbers refute (benchmarks/diagnosis.py; no check is run here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import gradprobe as gp

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "diagnosis.py"
_spec = importlib.util.spec_from_file_location("diagnosis_benchmark", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_path = list(sys.path)
_spec.loader.exec_module(bench)
sys.path[:] = _path  # the script puts src/ and benchmarks/ first; leave the test session's path alone


def _bug(kind: str, **fields):
    return next(b for b in bench.BUGS if b.kind == kind and all(getattr(b, k) == v for k, v in fields.items()))


def named(bug, diagnosis: str, *, indices=(), size: int = 64, prefix: str = "") -> bool:
    plant = bench.Planted(bug, bug.model, False, tuple(indices))
    return bench.kind_named(plant, diagnosis, lambda name: prefix + name, size)


@pytest.mark.parametrize(
    ("bug", "accepted", "rejected"),
    [
        (_bug("sign flipped"), ["sign flipped", "sign flipped throughout (16 of 16 sampled elements wrong)"],
         ["2.00x", "-2.00x", "3 of 20 wrong (elements 1, 2, sign flipped)"]),
        (_bug("factor", factor=2.0), ["2.00x", "2.00x throughout (16 of 16 sampled elements wrong)"],
         ["12.00x", "-2.00x", "0.50x", "1 of 64 wrong (element (7, 5), 2.00x)", "24 wrong elements (all in row 2), 2.00x"]),
        (_bug("factor", factor=0.5), ["0.50x"], ["2.00x", "10.50x"]),
        (_bug("1/m missing", batch_size=True), ["32x (= m, m=32)"], ["32x (= 32)", "0.03125x (= 1/m, m=32)"]),
        (_bug("1/m missing", batch_size=False), ["32.00x", "32x"], ["132x", "132.00x", "0.03125x (= 1/32)", "1.32x"]),
        (_bug("1/m doubled", batch_size=True), ["0.03125x (= 1/m, m=32)"], ["0.03125x (= 1/32)", "32x (= m, m=32)"]),
        (_bug("1/m doubled", batch_size=False), ["0.03125x (= 1/32)"], ["0.03125x", "32x (= 32)"]),
        (_bug("transposed"), ["transposed", "transposed throughout (16 of 16 sampled elements wrong)"], ["2.00x"]),
        (_bug("axes permuted", axes=(1, 2, 0, 3)), ["axes permuted (1, 2, 0, 3)"],
         ["axes permuted (2, 0, 1, 3)", "transposed"]),
        (_bug("reversed axis", axis=3), ["reversed along axis 3"], ["reversed along axis 2", "shifted by 1 along axis 3"]),
        (_bug("shifted", axis=2), ["shifted by 1 along axis 2", "shifted by -1 along axis 2 throughout"],
         ["shifted by 1 along axis 1", "shifted by 2 along axis 2", "reversed along axis 2"]),
        (_bug("all zeros"), ["all zeros", "all zeros (16 of 16 sampled elements wrong)"], ["the gradient of U", "0x"]),
        (_bug("should be zero"), ["should be zero"], ["wrong throughout (16 of 16 sampled elements wrong)"]),
        (_bug("row/column", line=("row", 2, 2.0)), ["8 of 64 wrong (all in row 2, 2.00x)", "24 wrong elements (all in row 2)"],
         ["8 of 64 wrong (all in row 21)", "8 of 64 wrong (all in column 2)", "8 of 64 wrong"]),
        (_bug("rounded to float32"), ["rounded to float32"], ["1.0000001x", "0.9999999936x"]),
    ],
    ids=lambda value: value.label if isinstance(value, bench.Bug) else None,
)
def test_matcher_accepts_the_kind_and_rejects_its_neighbours(bug, accepted, rejected):
    for text in accepted:
        assert named(bug, text), text
    for text in rejected:
        assert not named(bug, text), text
    assert not named(bug, None)


def test_swapped_names_the_other_tensor_by_its_report_name():
    bug = _bug("swapped", target="W2", source="W1")
    assert named(bug, "the gradient of W1")
    assert named(bug, "the gradient of W1 (16 of 16 sampled elements wrong)")
    assert not named(bug, "the gradient of W2")
    assert not named(bug, "the gradient of W10")
    assert named(bug, "the gradient of params.W1", prefix="params.")
    assert not named(bug, "the gradient of W1", prefix="params.")


def test_few_elements_must_count_and_name_every_planted_index():
    bug = _bug("few elements", count=2)
    planted = [(1, 0), (3, 4)]
    assert named(bug, "2 of 36 wrong (elements (1, 0), (3, 4), 2.00x)", indices=planted, size=36)
    assert not named(bug, "2 wrong elements", indices=planted, size=36)
    assert not named(bug, "2 of 36 wrong (elements (1, 0), (3, 5))", indices=planted, size=36)
    assert not named(bug, "3 of 36 wrong (elements (1, 0), (3, 4), (0, 0))", indices=planted, size=36)
    one = _bug("few elements", count=1, target="b1")
    assert named(one, "1 of 8 wrong (element 4, 2.00x)", indices=[(4,)], size=8)
    assert named(one, "1 wrong element (element 4, 2.00x)", indices=[(4,)], size=8)
    assert not named(one, "1 of 8 wrong (element 14)", indices=[(4,)], size=8)
    assert not named(one, "1 of 8 wrong (element 5, 4.00x)", indices=[(4,)], size=8)


@pytest.mark.parametrize("bug", [b for b in bench.BUGS if not b.source and b.kind != "rounded to float32"], ids=lambda b: b.label)
def test_each_bug_plants_what_its_kind_says(bug):
    plant = bench.planted(bug, bug.model, False)
    params, data = bench.model_point(bench.MODELS[bug.model], False, "float64")
    right = bench.MODELS[bug.model].backward(bench.NumpyOps, params, data)
    g = right[bug.target]
    wrong = bench.apply_bug(bench.NumpyOps, plant, right, g.shape)
    assert all(np.array_equal(wrong[k], right[k]) for k in params if k != bug.target)
    a = wrong[bug.target]
    expected = {
        "transposed": lambda: g.transpose(bug.axes), "axes permuted": lambda: g.transpose(bug.axes),
        "reversed axis": lambda: np.flip(g, bug.axis), "shifted": lambda: np.roll(g, 1, bug.axis),
    }.get(bug.kind, lambda: None)()  # fmt: skip
    if expected is not None:
        assert a.shape == g.shape and np.array_equal(a, expected)
    elif bug.factor is not None:
        assert np.array_equal(a, g * bug.factor)
    elif bug.kind == "few elements":
        changed = {tuple(int(i) for i in index) for index in np.argwhere(a != g)}
        assert changed == set(plant.indices) and len(changed) == bug.count
    elif bug.kind == "row/column":
        direction, where, _ = bug.line
        lines = np.argwhere(a != g)[:, 0 if direction == "row" else 1]
        assert set(lines.tolist()) == {where}


def test_catalogue_has_every_kind_on_several_tensors_of_1_to_4_axes_and_at_least_100_instances():
    plants = [bench.planted(b, b.model, False) for b in bench.BUGS]
    rows = bench.catalogue(plants, bench.FRAMEWORKS, bench.DTYPES)
    assert sum(int(rows[-1][f]) for f in bench.FRAMEWORKS) >= 100
    assert [r["kind"] for r in rows[:-1]] == bench.KINDS
    ranks = set()
    for kind in bench.KINDS:
        tensors = {(b.model, b.target) for b in bench.BUGS if b.table_kind == kind}
        assert len(tensors) >= 2, kind
        ranks |= {len(bench.model_point(bench.MODELS[m], False, "float64")[0][t].shape) for m, t in tensors}
    assert ranks == {1, 2, 3, 4}


def _tensor(diagnosis, hint=None, shape=(6,), counts=None, worst=(), analytic=None):
    # The report's sentences are rendered from its facts and cannot contradict them: a stand-in with
    # free sentences tests the checker on the contradictions it exists to find.
    return SimpleNamespace(
        name="c", shape=shape, status="fail", diagnosis=diagnosis, hint=hint,
        worst=tuple(gp.Element(*w) for w in worst), counts=counts or {}, analytic=analytic,
    )


def test_contradictions_flag_sentences_the_numbers_refute():
    everywhere = _tensor("6 wrong elements", "c is right except at 6 element(s): look for a slip.", counts={"fail": 6})
    assert len(bench.contradictions(everywhere)) == 1
    miscounted = _tensor("3 of 6 wrong (elements 0, 1, 2)", "c is right except at 3 element(s)", counts={"fail": 2})
    assert bench.contradictions(miscounted) == ["'3 of 6 wrong' but counts['fail'] = 2, size 6"]
    rounded = _tensor("0.13x", worst=[((0,), 0.125, 1.0), ((1,), -0.25, -2.0)])
    assert len(bench.contradictions(rounded)) == 1
    flipped = _tensor("sign flipped", worst=[((0,), 1.0, 1.0)])
    assert len(bench.contradictions(flipped)) == 1
    zeros = _tensor("all zeros", analytic=np.array([0.0, 0.0, 1e-3, 0.0, 0.0, 0.0]))
    assert len(bench.contradictions(zeros)) == 1


def test_contradictions_accept_consistent_reports():
    assert bench.contradictions(_tensor("2.00x", worst=[((0,), 2.0, 1.0), ((3,), -0.5, -0.25)])) == []
    assert bench.contradictions(_tensor("32x (= m, m=32)", worst=[((0,), 32.0, 1.0)])) == []
    assert bench.contradictions(_tensor("0.03125x (= 1/32)", worst=[((0,), 1.0, 32.0)])) == []
    assert bench.contradictions(_tensor(
        "1 of 6 wrong (element 4, 2.00x)", "c is right except at 1 element(s) (element 4)", counts={"fail": 1, "pass": 5},
        worst=[((4,), 2.0, 1.0), ((0,), 1.0, 1.0)],
    )) == []  # fmt: skip
    assert bench.contradictions(_tensor("all zeros", analytic=np.zeros(6), worst=[((0,), 0.0, 1.0)])) == []
