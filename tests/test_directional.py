"""The directional strategy: random directions per tensor, the stated detection guarantee,
`strategy="auto"`, `budget=`, and `strategy="sample"`."""

import math
import re

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.judge._guarantee import resolution_at
from gradprobe.strategies._direction_probes import RESOLUTION_GOAL
from gradprobe.strategies._cost import AUTO_FULL_LIMIT

RNG = np.random.default_rng(7)
PARAMS = {"A": RNG.standard_normal((40, 30)) / 6, "u": RNG.standard_normal(30), "s": 0.3}


def loss(p):
    z = np.tanh(p["A"] @ p["u"])
    return float(np.sum(z**2) + p["s"] * np.sum(p["u"] ** 2) + np.sin(p["s"]))


def grad(p):
    z = np.tanh(p["A"] @ p["u"])
    d = 2 * z * (1 - z**2)
    return {
        "A": np.outer(d, p["u"]),
        "u": p["A"].T @ d + 2 * p["s"] * p["u"],
        "s": float(np.sum(p["u"] ** 2) + np.cos(p["s"])),
    }


def with_error(error):
    """`grad` plus a fixed error added to A's gradient."""

    def wrong(p):
        g = grad(p)
        g["A"] = g["A"] + error
        return g

    return wrong


def test_a_correct_gradient_passes_with_a_stated_guarantee():
    report = gp.check(loss, grad, PARAMS, strategy="directional")
    assert report.status == "pass" and report.strategy == "directional"
    guarantee = report.guarantee
    assert guarantee.kind == "directional" and guarantee.confidence == 0.999
    assert 0 < report.resolution == guarantee.resolution <= RESOLUTION_GOAL
    assert set(guarantee.probes) == {"A", "u", "s"} and all(k >= 1 for k in guarantee.probes.values())
    # the bound at the stated resolution is the promised miss probability
    assert guarantee.miss_probability(guarantee.resolution) == pytest.approx(1 - 0.999, rel=1e-6)
    assert guarantee.miss_probability(10 * guarantee.resolution) < guarantee.miss_probability(guarantee.resolution)
    assert guarantee.miss_probability(1e-3, tensor="A") <= guarantee.miss_probability(1e-3)
    assert "caught with probability >= 1 - 1e-03" in str(guarantee)
    assert "guarantee:" in str(report) and "strategy directional" in str(report)
    # a handful of evaluations, whatever the size
    assert report.nfev < 60
    assert report.coverage.complete and set(report.coverage.evaluations) == {"setup", "verdict"}


def test_the_resolution_formula():
    assert resolution_at([1e-9], 0.999) == pytest.approx(1e-6)
    assert resolution_at([1e-9, 1e-9], 1 - 1e-6) == pytest.approx(1e-6)
    # a direction weaker than the answer contributes a factor of one, not more
    assert resolution_at([1e-9, 1.0], 0.999) == pytest.approx(1e-6)
    assert resolution_at([], 0.999) == math.inf


@pytest.mark.parametrize("pattern", ["one element", "zero-sum", "alternating", "all positive"])
def test_errors_above_the_resolution_are_caught_for_every_seed(pattern):
    """Errors that all-positive random vectors can miss (pytorch#59615) do not escape ours."""
    g = grad(PARAMS)["A"]
    size = 1e-3 * np.linalg.norm(g)  # relative size 1e-3, far above the resolution
    rng = np.random.default_rng(0)
    if pattern == "one element":
        error = np.zeros_like(g)
        error[3, 4] = size
    elif pattern == "zero-sum":
        error = rng.standard_normal(g.shape)
        error -= error.mean()
    elif pattern == "alternating":
        error = np.where((np.arange(g.size) % 2).reshape(g.shape) == 0, 1.0, -1.0)
    else:
        error = np.ones_like(g)
    error *= size / np.linalg.norm(error)
    for seed in range(8):
        report = gp.check(loss, with_error(error), PARAMS, strategy="directional", seed=seed)
        assert report.failing == ("A",), (seed, report)


def test_a_stronger_guarantee_costs_more_directions():
    default = gp.check(loss, grad, PARAMS, strategy="directional")
    strong = gp.check(loss, grad, PARAMS, strategy="directional", confidence=1 - 1e-9)
    assert strong.status == "pass" and strong.guarantee.confidence == 1 - 1e-9
    assert strong.nfev > default.nfev
    assert sum(strong.guarantee.probes.values()) > sum(default.guarantee.probes.values())
    assert strong.guarantee.miss_probability(1e-3) < default.guarantee.miss_probability(1e-3)
    assert "1 - 1e-09" in str(strong.guarantee)
    three = gp.check(loss, grad, PARAMS, strategy="directional", probes=3)
    assert all(count == 3 for count in three.guarantee.probes.values())
    assert all(len(t) == 3 for t in three.guarantee.thresholds.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_and_the_complex_step(dtype):
    params = {"A": PARAMS["A"].astype(dtype), "u": PARAMS["u"].astype(dtype), "s": 0.3}
    report = gp.check(loss, grad, params, strategy="directional")
    assert report.status == "pass"
    report = gp.check(loss, with_error(1e-2), params, strategy="directional")
    assert report.failing == ("A",)
    exact = gp.check(lambda p: np.sum(np.sin(p["A"]) * p["s"]), lambda p: {"A": np.cos(p["A"]) * p["s"], "s": np.sum(np.sin(p["A"]))},
                     {"A": PARAMS["A"], "s": 0.7}, strategy="directional", method="complex")  # fmt: skip
    assert exact.status == "pass" and exact.method == "complex" and exact.resolution < 1e-8


def test_auto_probes_every_coordinate_of_small_problems_and_random_directions_of_large_ones():
    small_loss, small_grad = lambda p: float(np.sum(np.sin(p) * p)), lambda p: np.cos(p) * p + np.sin(p)
    small = gp.check(small_loss, small_grad, PARAMS["u"])
    assert small.strategy == "full" and small.guarantee is None
    large = gp.check(loss, grad, PARAMS)
    assert sum(v.size for v in map(np.asarray, PARAMS.values())) > AUTO_FULL_LIMIT
    assert large.strategy == "directional" and large.guarantee is not None
    # Its noise estimate is cheaper than the core's (one table of 7 points, one repeat call): the
    # starting point, the repeat and the table's 6 new points.
    assert large.coverage.evaluations["setup"] == 8
    assert small.coverage.evaluations["setup"] == 1 + 2 + 3 * 8
    # a budget too small for every coordinate turns "auto" directional too
    budgeted = gp.check(small_loss, small_grad, PARAMS["u"], budget=64)
    assert budgeted.strategy == "directional" and budgeted.nfev <= 64


def test_a_budget_bounds_the_work_and_the_report_says_what_it_left_out():
    report = gp.check(loss, grad, PARAMS, strategy="full", budget=200)
    assert report.nfev <= 200 and report.strategy == "full"
    assert report.status == "inconclusive"
    assert not report.coverage.complete and report.coverage.budget == "200 evaluations"
    assert all(t.reason == "budget" and 0 <= t.coverage < 1 for t in report.tensors.values() if t.status == "inconclusive")
    gaps = report.coverage.not_covered
    assert gaps and all(("elements checked" in gap) or gap.endswith("not checked") for gap in gaps)
    assert "budget of 200 evaluations reached; not covered:" in str(report)
    assert report.options["budget"] == 200 and "budget=200" in report.reproduce
    # the same evaluation budget gives the same report
    again = gp.check(loss, grad, PARAMS, strategy="full", budget=200)
    assert again == report and again.to_json() == report.to_json()


def test_a_budget_that_runs_out_before_a_tensor_is_probed():
    report = gp.check(loss, with_error(1e-2), PARAMS, strategy="directional", budget=32)
    assert report.nfev <= 32
    # the setup fits; what the budget left unprobed is inconclusive, never a pass
    assert all(t.status != "pass" or t.probes for t in report.tensors.values())
    assert report.coverage.complete or report.coverage.not_covered


def test_a_time_budget_stops_the_check():
    report = gp.check(loss, grad, PARAMS, strategy="full", budget="1ms")
    assert report.coverage.budget == "0.001 s" and not report.coverage.complete
    assert report.nfev < 4 * sum(np.size(v) for v in PARAMS.values())


def test_sample_probes_a_random_subset_of_coordinates():
    report = gp.check(loss, with_error(1e-2), PARAMS, strategy="sample", probes=10)
    assert report.strategy == "sample" and report.guarantee.kind == "sample"
    tensor = report.tensors["A"]
    assert tensor.status == "fail" and tensor.probes == 10 and tensor.coverage == pytest.approx(10 / 1200)
    assert report.tensors["s"].probes == 1 and report.tensors["s"].coverage == 1.0
    # 10 samples catch an error on 30% of the elements with probability 1 - 0.7**10
    assert report.guarantee.miss_probability(0.3, tensor="A") == pytest.approx(0.7**10)
    assert "sampled elements per tensor" in str(report.guarantee)


def test_a_tensor_the_loss_cannot_see_is_inconclusive_as_with_every_coordinate():
    """W's gradient (3e-60) is invisible in a loss of order 1: an error of 1e10 in it would go
    unnoticed. A tensor whose gradient is tiny but resolved in absolute terms still passes."""
    params = {"A": PARAMS["A"], "w": 1e-30, "b": PARAMS["u"]}
    c = 1e-40

    def tiny_loss(p):
        return float(np.sum(np.sin(p["A"])) + p["w"] ** 3 + c * np.sum(p["b"] ** 2))

    def tiny_grad(p):
        return {"A": np.cos(p["A"]), "w": 3 * p["w"] ** 2, "b": 2 * c * p["b"]}

    for strategy in ("full", "directional"):
        report = gp.check(tiny_loss, tiny_grad, params, strategy=strategy)
        assert report.tensors["w"].status == "inconclusive" and report.tensors["w"].reason == "noise", report
        assert report.tensors["A"].status == report.tensors["b"].status == "pass", report
        assert report.status == "inconclusive"


def test_subnormal_parameters_get_a_verdict():
    x = np.array([1.9e-310, 1.5e-310, -1.8e-310])
    report = gp.check(lambda p: float(np.sum(np.tanh(p))), lambda p: 1 - np.tanh(p) ** 2, x, strategy="directional")
    assert report.status == "pass" and 0 < report.resolution < 1e-3
    wrong = gp.check(lambda p: float(np.sum(np.tanh(p))), lambda p: 2 - 2 * np.tanh(p) ** 2, x, strategy="directional")
    assert wrong.status == "fail"


def test_a_budgeted_full_check_says_each_finding_once():
    """Each chunk of a budgeted "full" check measures the noise where its probes are (here in
    almost every chunk more than the difference tables saw); the report says so once per kind of
    finding, with the largest noise any error bar used."""
    x = np.random.default_rng(0).standard_normal(900)
    report = gp.check(lambda p: float(np.round(np.sum(p**2), 6)), lambda p: 2 * p, x, strategy="full", budget=2000)
    assert report.nfev <= 2000 and len(report.notes) == len(set(report.notes))
    noisy = [note for note in report.notes if note.startswith("the probes show more noise")]
    assert 1 <= len(noisy) <= 2, report.notes
    assert len({re.sub(r"[0-9.]+e[-+][0-9]+", "#", note) for note in noisy}) == len(noisy)
    largest = max(float(note.split("(")[1].split(")")[0]) for note in noisy)
    assert report.noise == pytest.approx(largest, rel=1e-2)


def test_the_guarantee_makes_no_claim_for_an_undecided_tensor():
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((40, 40)), "v": rng.standard_normal(1000)}

    at_kinks = params["v"].copy()

    # Smooth in W; in v every element sits on a kink: no derivative to check there. (A sine far too
    # fast for a coordinate step, sin(1e9 v), used to stand here: the directions' deeper float64
    # ladders now resolve it, and pass its right gradient.)
    def kinked_loss(p):
        return float(np.sum(np.tanh(p["W"]) ** 2) + np.sum(np.abs(p["v"] - at_kinks)))

    def grad(p):
        return {"W": 2 * np.tanh(p["W"]) * (1 - np.tanh(p["W"]) ** 2), "v": np.sign(p["v"] - at_kinks)}

    report = gp.check(kinked_loss, grad, params)
    assert report.strategy == "directional" and report.tensors["v"].status == "inconclusive"
    assert report.tensors["W"].status == "pass"
    guarantee = report.guarantee
    assert guarantee.undecided == ("v",)
    assert guarantee.miss_probability(0.5, tensor="v") == 1.0 and guarantee.miss_probability(0.5) == 1.0
    assert guarantee.miss_probability(0.5, tensor="W") < 1e-3
    assert guarantee.resolution == report.tensors["W"].resolution
    assert "any tensor but v (undecided: no claim for them)" in str(report)
    assert report.resolution == max(t.resolution for t in report.tensors.values())  # the worst tensor's
