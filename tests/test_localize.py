"""Group testing: a failing tensor's wrong elements named by index in O(k log n) probes, and a
tensor that is wrong throughout recognised early."""

import math

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.strategies._localize import EARLY_BLOCKS, MAX_FRONTIER, SAMPLE_SIZE, localize
from gradprobe.judge._verdict import FAIL, NOISE, PASS


class Oracle:
    """A fake prober: a block fails when it holds a wrong element; counts the probes."""

    def __init__(self, wrong, unsure=()):
        self.wrong, self.unsure = set(wrong), set(unsure)
        self.blocks = self.elements = 0

    def test_blocks(self, blocks):
        self.blocks += len(blocks)
        codes = []
        for a, b in blocks:
            if any(a <= w < b for w in self.wrong):
                codes.append(FAIL)
            elif any(a <= u < b for u in self.unsure):
                codes.append(NOISE)
            else:
                codes.append(PASS)
        return codes

    def test_elements(self, indices):
        self.elements += len(indices)
        return [FAIL if int(i) in self.wrong else (NOISE if int(i) in self.unsure else PASS) for i in indices]

    def sample(self, count):
        return np.random.default_rng(0).choice(self.n, count, replace=False)

    def run(self, n, **kwargs):
        self.n = n
        return localize((0, n), test_blocks=self.test_blocks, test_elements=self.test_elements, sample=self.sample, **kwargs)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1_000_000])
def test_one_wrong_element_is_named_in_log_n_probes(n):
    oracle = Oracle([n // 3])
    found = oracle.run(n)
    assert found.located == (n // 3,) and not found.widespread and found.complete
    assert found.probes == oracle.blocks + oracle.elements
    assert found.probes <= 2 * max(1, math.ceil(math.log2(n)))


def test_three_wrong_elements_cost_at_most_three_times_as_much():
    n = 1_000_000
    oracle = Oracle([5, 500_000, 999_999])
    found = oracle.run(n)
    assert found.located == (5, 500_000, 999_999)
    assert found.probes <= 3 * 2 * math.ceil(math.log2(n))


def test_an_error_everywhere_stops_bisecting_early_and_samples():
    n = 1_000_000
    oracle = Oracle(range(n))
    found = oracle.run(n)
    assert found.widespread and found.located == ()
    assert len(found.sampled) == SAMPLE_SIZE
    # halves, quarters, eighths, then the sample
    assert oracle.blocks == 2 + 4 + EARLY_BLOCKS and oracle.elements == SAMPLE_SIZE


def test_a_few_scattered_errors_that_fail_every_eighth_keep_being_bisected():
    n = 8000
    wrong = [500 + 1000 * k for k in range(8)]  # one in each eighth: the sample finds none of them
    found = Oracle(wrong).run(n)
    assert not found.widespread and found.located == tuple(wrong)


def test_errors_in_too_many_places_stop_at_the_cap():
    n = 1 << 16
    wrong = list(range(0, n, n // 64))[: MAX_FRONTIER + 8]
    oracle = Oracle(wrong)
    found = oracle.run(n)
    assert found.widespread
    assert found.probes < (MAX_FRONTIER + 8) * 2 * 16


def test_undecided_blocks_are_split_too():
    found = Oracle([40], unsure=[7]).run(64)
    assert found.located == (40,) and found.unsure == (7,)


def test_the_budget_leaves_the_failing_blocks_pending():
    calls = []

    def affords(blocks, elements):
        calls.append((blocks, elements))
        return len(calls) <= 3

    found = Oracle([700]).run(1024, affords=affords)
    assert not found.complete and found.located == ()
    (a, b), = found.pending
    assert a <= 700 < b and b - a == 1024 >> 3


# -- through gp.check -----------------------------------------------------------------------------

RNG = np.random.default_rng(3)
PARAMS = {"W": RNG.standard_normal((60, 50)) / 8, "b": 0.1 * RNG.standard_normal(60), "c": RNG.standard_normal(50)}
X = RNG.standard_normal((50, 12))


def loss(p):
    hidden = np.tanh(p["W"] @ X + p["b"][:, None])
    return float(np.sum(hidden**2) / 12 + 0.5 * np.sum(p["c"] ** 2 * (p["W"] ** 2).sum(0)))


def true_grad(p):
    hidden = np.tanh(p["W"] @ X + p["b"][:, None])
    d = 2 * hidden * (1 - hidden**2) / 12
    column = (p["W"] ** 2).sum(0)
    return {"W": d @ X.T + p["c"] ** 2 * p["W"], "b": d.sum(1), "c": p["c"] * column}


def planted(*positions, factor=2.0):
    def grad(p):
        g = true_grad(p)
        for position in positions:
            g["W"][position] *= factor
        return g

    return grad


def test_the_correct_gradient_passes_directionally():
    report = gp.check(loss, true_grad, PARAMS, strategy="directional")
    assert report.status == "pass" and report.strategy == "directional"


@pytest.mark.parametrize(
    "positions",
    [[(17, 3)], [(0, 0), (31, 49), (59, 11)]],
    ids=["one", "three"],
)
def test_wrong_elements_are_named_by_index(positions):
    report = gp.check(loss, planted(*positions), PARAMS, strategy="directional")
    tensor = report.tensors["W"]
    assert report.status == "fail" and report.failing == ("W",)
    assert sorted(e.index for e in tensor.worst) == sorted(positions)
    for element in tensor.worst:
        assert element.analytic == pytest.approx(2 * element.numeric, rel=1e-6)
    assert tensor.diagnosis.startswith(f"{len(positions)} wrong element")
    assert tensor.counts["fail"] == len(positions)
    # O(k log n): far below the 4 n evaluations of probing every coordinate
    n = sum(v.size for v in PARAMS.values())
    assert report.nfev < 60 + len(positions) * 12 * math.ceil(math.log2(PARAMS["W"].size))
    assert report.nfev < n / 4


def test_an_error_everywhere_is_reported_for_the_whole_tensor():
    def grad(p):
        g = true_grad(p)
        g["W"] = 2 * g["W"]
        return g

    report = gp.check(loss, grad, PARAMS, strategy="directional")
    tensor = report.tensors["W"]
    assert report.failing == ("W",)
    assert tensor.diagnosis.startswith("2.00x throughout") and "sampled elements wrong" in tensor.diagnosis
    assert tensor.scale == pytest.approx(2.0, rel=1e-6)
    assert len(tensor.worst) > 0 and tensor.counts["fail"] >= 8
    assert report.nfev < 300


def test_the_budget_narrows_the_location_without_overspending():
    grad = planted((17, 3))
    full = gp.check(loss, grad, PARAMS, strategy="directional")
    for budget in (60, 100):
        report = gp.check(loss, grad, PARAMS, strategy="directional", budget=budget)
        assert report.nfev <= budget
        assert report.status == "fail" and report.failing == ("W",)
        assert not report.coverage.complete and report.coverage.budget == f"{budget} evaluations"
        assert any(gap.startswith("W: wrong elements not all named") for gap in report.coverage.not_covered)
    assert full.coverage.complete and full.nfev > 100
