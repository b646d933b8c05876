"""The cost benchmark's own helpers (benchmarks/cost.py): its larger problems' gradients are right
and their bugs sit where they claim, a torch op seen as a numpy loss keeps its gradient, counted
evaluations are the function's calls, and the tables' arithmetic; no gradprobe check is run here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "cost.py"
_spec = importlib.util.spec_from_file_location("cost_benchmark", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_path = list(sys.path)
_spec.loader.exec_module(bench)
sys.path[:] = _path  # the script puts src/ and the repository first; leave the test session's path alone


def _central(loss, params: dict, step: float = 1e-6) -> dict:
    numeric = {}
    for name, value in params.items():
        numeric[name] = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            p = {k: v.copy() for k, v in params.items()}
            p[name][index] = value[index] + step
            plus = loss(p)
            p[name][index] = value[index] - step
            numeric[name][index] = (plus - loss(p)) / (2 * step)
    return numeric


@pytest.mark.parametrize("build", [bench.tanh_sin, bench.softmax_regression, bench.mlp], ids=lambda b: b.__name__)
def test_larger_problems_gradients_and_bugs(build):
    case, bugs = build()
    if sum(v.size for v in case.params.values()) <= 1010:  # the MLP's differences take too long here
        numeric = _central(case.loss, case.params)
        for name, value in case.grad(case.params).items():
            assert np.allclose(value, numeric[name], rtol=1e-5, atol=1e-7), name
    correct = case.grad(case.params)
    for bug in bugs:
        wrong = bug.grad(case.params)
        assert bug.size > 1e-4
        for name in case.params:
            assert np.array_equal(wrong[name], correct[name]) == (name != bug.tensor), (bug.kind, name)


def test_problem_sizes():
    assert [sum(v.size for v in build()[0].params.values()) for build in (bench.tanh_sin, bench.softmax_regression, bench.mlp)] == [400, 1010, 2632]


def test_torch_op_as_numpy_loss_keeps_its_gradient_and_counts_calls():
    torch = pytest.importorskip("torch")
    from benchmarks.frameworks import torch_ops

    op = next(o for o in torch_ops.ops() if o.name == "linear")
    names = ["x", "W", "b"]
    case = bench.torch_as_case(op.name, op.fn, op.make_inputs, names)
    numeric = _central(case.loss, case.params)
    for name, value in case.grad(case.params).items():
        assert np.allclose(value, numeric[name], rtol=1e-6, atol=1e-8), name
    n = sum(t.numel() for t in op.make_inputs(torch.float64))
    passed = bench.gradcheck_torch(op.fn, op.make_inputs, names)
    assert (passed.status, passed.nfev) == ("pass", 2 * n + 2)  # two differences per element, two plain calls
    failed = bench.gradcheck_torch(op.buggy_fn, op.make_inputs, names)
    assert (failed.status, failed.blamed) == ("fail", frozenset({"W"}))


def _measured(family: str, name: str, n: int, nfevs: dict, culprit=None, blamed=frozenset(), status="pass"):
    problem = bench.Problem(family, name, n, ())
    variant = bench.Variant("correct" if culprit is None else f"bug ({culprit})", culprit, {})
    outcomes = {tool: bench.Cost(status, blamed, None, nfev, 0.01 * nfev, {"setup": 27}) for tool, nfev in nfevs.items()}
    return bench.Measured(problem, variant, outcomes)


def test_tables_arithmetic():
    correct = _measured("bug suite", "a", 10, {"gradprobe": 100, "gradcheck": 22, "seed loop": 20})
    caught = _measured("bug suite", "a", 10, {"gradprobe": 140, "gradcheck": 22, "seed loop": 20}, "W", frozenset({"W"}), "fail")
    misblamed = _measured("torch op", "a", 20, {"gradprobe": 150, "gradcheck": 42, "seed loop": 40}, "x", frozenset({"x", "y"}), "fail")
    assert bench.excess(correct) == 75 and bench.excess(misblamed) == 100
    assert correct.clean == {"gradprobe": True, "gradcheck": True, "seed loop": True}
    assert caught.clean["gradprobe"] and not misblamed.clean["gradprobe"]
    assert correct.key != misblamed.key  # one name in two families is two problems
    rows = bench.cost_rows([correct, caught, misblamed])
    assert [(r["problems"], r["gradient"]) for r in rows] == [
        ("bug suite (1)", "correct (1)"), ("bug suite (1)", "buggy (1)"), ("torch op (1)", "buggy (1)"),
        ("bug suite + torch ops (1)", "correct (1)"), ("bug suite + torch ops (2)", "buggy (2)"),
    ]
    assert rows[0]["gradprobe nfev - 2.5 n (min to max)"] == "**75** (75 to 75)"
    assert rows[0]["time gradprobe / gradcheck"] == f"{100 / 22:.2f}x"
    assert rows[4]["within 2.5 n + 60"] == "0 / 2"
    verdicts = {(r["tool"], r["problems"]): r for r in bench.verdict_rows([correct, caught, misblamed])}
    assert verdicts[("gradprobe", "torch op")]["right tensor blamed"] == "0 / 1"
    assert verdicts[("gradprobe", "bug suite")]["right tensor blamed"] == "1 / 1"
    assert bench.unclean([correct, caught, misblamed]) == [
        f"{tool}: a bug (x): fail, blamed x, y" for tool in bench.TOOLS
    ]
