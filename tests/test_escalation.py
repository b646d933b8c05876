"""An inconclusive directional verdict escalates before it is reported: directions descend deeper
when the loss is evaluated in float64, and tensors they leave undecided get their elements probed
one by one, within the budget or a cap of `ESCALATION_FACTOR` times the verdict's evaluations."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.strategies import _direction_probes, _directional_strategy

RNG = np.random.default_rng(0)
PARAMS = {"W": RNG.standard_normal((40, 40)), "v": RNG.standard_normal(50)}
AT_KINKS = PARAMS["v"][:2].copy()  # v[0] and v[1] sit exactly on kinks of |v - AT_KINKS|


def kinked_loss(p):
    """Smooth in W; in v, two elements at kinks (every direction through v crosses them)."""
    v = p["v"]
    return float(np.sum(np.tanh(p["W"]) ** 2) + np.sum(np.abs(v[:2] - AT_KINKS)) + np.sum(np.sin(v[2:])))


def kinked_grad(factor=1.0):
    def grad(p):
        v = p["v"]
        return {
            "W": 2 * np.tanh(p["W"]) * (1 - np.tanh(p["W"]) ** 2),
            "v": np.concatenate([np.sign(v[:2] - AT_KINKS), factor * np.cos(v[2:])]),
        }

    return grad


def test_a_tensor_undecided_by_directions_is_decided_element_by_element():
    report = gp.check(kinked_loss, kinked_grad(1.01), PARAMS)
    assert report.strategy == "directional"
    v = report.tensors["v"]
    assert v.status == "fail" and v.diagnosis == "1.01x" and v.kinks == ((0,), (1,))
    assert "escalation" in report.coverage.evaluations
    exact = report.guarantee.exact
    assert set(exact) == {"v"} and exact["v"] == v.resolution
    # Element by element, an error at or above the tensor's resolution is caught for certain; no
    # claim below it.
    assert report.guarantee.miss_probability(exact["v"], tensor="v") == 0.0
    assert report.guarantee.miss_probability(exact["v"] / 2, tensor="v") == 1.0
    assert "v checked element by element" in str(report)
    assert any(note.startswith("v: random directions left it undecided (kink)") for note in report.notes)


def test_a_correct_tensor_at_kinks_stays_undecided_with_no_claim():
    report = gp.check(kinked_loss, kinked_grad(), PARAMS)
    v = report.tensors["v"]
    assert v.status == "inconclusive" and v.reason == "kink" and report.tensors["W"].status == "pass"
    assert report.guarantee.undecided == ("v",) and report.guarantee.exact == {}
    assert report.guarantee.miss_probability(0.5, tensor="v") == 1.0
    assert report.nearby is not None and report.nearby.status == "pass"


def test_escalation_stays_within_its_cap_and_within_a_budget():
    report = gp.check(kinked_loss, kinked_grad(1.01), PARAMS)
    spent = report.coverage.evaluations
    before = sum(count for phase, count in spent.items() if phase != "escalation")
    assert spent["escalation"] <= _directional_strategy.ESCALATION_FACTOR * before
    budget = before + 20  # room for a few elements only: the tensor cannot be decided whole
    budgeted = gp.check(kinked_loss, kinked_grad(1.01), PARAMS, budget=budget)
    assert budgeted.nfev <= budget
    assert budgeted.tensors["v"].status != "pass"


def test_a_sample_of_a_large_undecided_tensor_can_fail_it_but_never_pass_it():
    """A tensor too large to probe whole within the cap: 32 elements drawn at random."""
    rng = np.random.default_rng(1)
    params = {"W": rng.standard_normal((40, 40)), "v": rng.standard_normal(4000)}
    kinks = params["v"][:2].copy()

    def loss(p):
        return float(np.sum(np.tanh(p["W"]) ** 2) + np.sum(np.abs(p["v"][:2] - kinks)) + np.sum(np.sin(p["v"][2:])))

    def grad(factor):
        return lambda p: {
            "W": 2 * np.tanh(p["W"]) * (1 - np.tanh(p["W"]) ** 2),
            "v": np.concatenate([np.sign(p["v"][:2] - kinks), factor * np.cos(p["v"][2:])]),
        }

    wrong = gp.check(loss, grad(1.01), params)
    v = wrong.tensors["v"]
    sampled = _directional_strategy.ESCALATION_SAMPLE
    assert v.status == "fail" and v.diagnosis.startswith("1.01x") and f"of {sampled} sampled elements wrong" in v.diagnosis
    assert all(element.analytic == pytest.approx(1.01 * element.numeric, rel=1e-6) for element in v.worst)
    assert "v" not in wrong.guarantee.exact
    right = gp.check(loss, grad(1.0), params)
    assert right.tensors["v"].status == "inconclusive" and "v" in right.guarantee.undecided
    assert any(f"{sampled} of its 4000 elements were then probed on their own" in note for note in right.notes)


def test_directions_descend_deeper_only_in_float64():
    """The float64 reference has the ulps for steps far below float32's: `_deepest` stops at
    `MIN_STEP_ULPS` of the typical element, whatever `DIRECTION_MAX_LEVELS` allows."""
    x = np.linspace(0.5, 1.5, 2000)
    loss = lambda p: float(np.sum(np.abs(p - x)))  # noqa: E731 - a kink at every element
    grad = lambda p: np.sign(p - x)  # noqa: E731
    deep = gp.check(loss, grad, x, strategy="directional", probes=1)
    shallow = gp.check(loss, grad, x.astype(np.float32), strategy="directional", probes=1, shadow=False)
    # One direction, descended to its deepest level (a kink never clears): two evaluations a level.
    assert deep.coverage.evaluations["verdict"] > 2 * 20
    assert shallow.coverage.evaluations["verdict"] <= 2 * 16


def test_native_low_precision_disagreements_decide_nothing():
    """In float32, coordinate steps cross kinks that float64 ones step inside: a sampled
    disagreement there is reported as a note, not as a failure."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    X, y = torch.randn(128, 16), torch.randint(0, 10, (128,))
    report = gp.torch.check_module(net, torch.nn.CrossEntropyLoss(), X, y, shadow=False)
    assert report.status != "fail"
    assert "escalation" in report.coverage.evaluations


def test_a_report_with_exact_tensors_follows_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    report = gp.check(kinked_loss, kinked_grad(1.01), PARAMS)
    data = json.loads(report.to_json())
    validator = jsonschema.Draft202012Validator(gp.Report.json_schema())
    assert not list(validator.iter_errors(data))
    assert data["guarantee"]["exact"] == {"v": report.guarantee.exact["v"]}


@pytest.mark.slow
def test_dense_relu_kinks_in_a_large_float32_model_are_decided():
    """2.1M float32 parameters, ReLU layers of 1024 units over a batch of 64: a direction through
    the first layer crosses kinks at every step down to 2**-11 of it (it was left undecided)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import large_float32

    torch.manual_seed(0)
    X, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
    report = gp.torch.check_module(large_float32.model(False), torch.nn.CrossEntropyLoss(), X, y)
    assert report.status == "pass", report
    assert all(t.status == "pass" for t in report.tensors.values())
    assert _direction_probes.DIRECTION_MAX_LEVELS > 12


def test_a_failing_direction_nothing_reproduces_is_no_failure(monkeypatch):
    """From PyTorch's operator set (`grid_sampler_3d`, 5.2M elements): one direction disagreed just
    above its threshold, bisection found every half right, one fresh direction was too noisy to
    tell and the other agreed; that was FAILed "wrong, not localized". Now inconclusive."""
    from dataclasses import replace as changed

    from gradprobe.judge._verdict import FAIL, NOISE

    original = _direction_probes.DirectionalProber.probe

    def probe(self, blocks, purpose, round_=0):
        results = original(self, blocks, purpose, round_)
        if purpose == _direction_probes.VERDICT and round_ == 0:
            return [changed(r, code=FAIL) for r in results]  # a false alarm
        if purpose == _direction_probes.CONFIRM and round_ == 0:
            return [changed(r, code=NOISE) for r in results]
        return results

    monkeypatch.setattr(_direction_probes.DirectionalProber, "probe", probe)
    x = np.random.default_rng(0).standard_normal(2000)
    report = gp.check(lambda p: float(np.sum(np.sin(p))), np.cos, x)
    assert report.strategy == "directional" and report.status == "inconclusive", report
    assert report.tensors["params"].reason == "noise" and report.guarantee.undecided == ("params",)
    assert any("did not both confirm it" in note for note in report.notes)


def test_a_failing_direction_that_only_one_fresh_direction_repeats_is_no_finding(monkeypatch):
    """The same operator on one thread: one fresh direction failed as well, the other agreed, and
    no element was wrong: a loss full of kinks, not a gradient shown wrong. Inconclusive."""
    from dataclasses import replace as changed

    from gradprobe.judge._verdict import FAIL

    original = _direction_probes.DirectionalProber.probe

    def probe(self, blocks, purpose, round_=0):
        results = original(self, blocks, purpose, round_)
        if (purpose, round_) in ((_direction_probes.VERDICT, 0), (_direction_probes.CONFIRM, 1)):
            return [changed(r, code=FAIL) for r in results]
        return results

    monkeypatch.setattr(_direction_probes.DirectionalProber, "probe", probe)
    x = np.random.default_rng(0).standard_normal(2000)
    report = gp.check(lambda p: float(np.sum(np.sin(p))), np.cos, x)
    assert report.status == "inconclusive" and report.guarantee.undecided == ("params",), report


def test_a_tensor_escalated_element_by_element_is_judged_on_the_whole_gradient_as_full_judges_it():
    # A gate at |0| in every live element: its gradient is zero, each element at a kink. Escalated
    # element by element it once PASSED "to within inf" (judged against its own zero gradient),
    # where "full" leaves it undecided at the kinks and checks a nearby point.
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = torch.randn(8, 4)
    x[:, 3] = 0
    y = torch.randint(0, 3, (8,))
    W, gate = torch.randn(3, 4, requires_grad=True), torch.zeros(4, requires_grad=True)
    fn = lambda W, gate: torch.nn.functional.cross_entropy((x * (1 + gate.abs())) @ W.T, y)  # noqa: E731
    directional = gp.torch.check(fn, W, gate, strategy="directional")
    full = gp.torch.check(fn, W, gate, strategy="full")
    assert directional.status == full.status == "inconclusive", directional
    assert directional.tensors["gate"].reason == "kink" and directional.nearby is not None
