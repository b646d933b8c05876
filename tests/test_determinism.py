"""Determinism: the same seed gives the same report, to the bit, across runs, processes, hash
seeds, and serial or parallel execution."""

from __future__ import annotations

import dataclasses
import inspect
import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.strategies import _options as _options

HERE = Path(__file__).resolve().parent


def bits(value):
    """A canonical form of a report in which equal means bit-for-bit equal (floats as hex, so
    -0.0 differs from 0.0 and NaN equals NaN; arrays as dtype, shape and bytes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple((f.name, bits(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, (float, np.floating)):
        return ("float", float(value).hex())
    if isinstance(value, dict):
        return ("dict", tuple((bits(k), bits(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(bits(v) for v in value))
    return value


# A problem with several tensors, float32 and float64, one wrong tensor and a kink, so that
# every part of the report (worst elements, diagnosis, kinks, notes) has something in it.
RNG = np.random.default_rng(42)
PARAMS = {
    "W": RNG.standard_normal((4, 3)),
    "b": np.array([0.0, 0.3, -0.2, 0.1]),
    "v": RNG.standard_normal(3).astype(np.float32),
}


def loss(p):
    hidden = np.tanh(p["W"] @ p["v"].astype(np.float64) + p["b"])
    return float(np.sum(hidden**2) + np.abs(p["b"][0]))


def grad(p):
    v = p["v"].astype(np.float64)
    hidden = np.tanh(p["W"] @ v + p["b"])
    d = 2 * hidden * (1 - hidden**2)
    db = d.copy()
    db[0] += np.sign(p["b"][0])
    return {"W": np.outer(d, v), "b": db, "v": (2 * p["W"].T @ d).astype(np.float32)}  # v is 2x: a bug


def run(seed=0, **options):
    return gp.check(loss, grad, PARAMS, seed=seed, **options)


def strategies():
    return [s for s in _options.STRATEGIES]


@pytest.mark.parametrize("strategy", strategies())
def test_same_seed_same_report_in_one_process(strategy):
    first, second = run(seed=7, strategy=strategy), run(seed=7, strategy=strategy)
    assert first.status == "fail" and "v" in {n for n, t in first.tensors.items() if t.status == "fail"}
    assert bits(first) == bits(second)
    assert first.to_json() == second.to_json() and str(first) == str(second)


def test_reports_do_not_depend_on_the_global_random_state():
    np.random.seed(1)
    first = run(seed=3)
    np.random.seed(2)
    np.random.standard_normal(100)
    assert bits(run(seed=3)) == bits(first)


SCRIPT = """
import sys, json
sys.path.insert(0, {here!r})
import test_determinism as t
report = t.run(seed=5, strategy={strategy!r})
print(json.dumps({{"json": report.to_json(), "bits": repr(t.bits(report))}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["full", "directional"])
def test_same_report_across_processes_and_hash_seeds(strategy):
    if strategy not in _options.STRATEGIES:
        pytest.skip(f"strategy {strategy!r} not in this tree")
    here = run(seed=5, strategy=strategy)
    outputs = []
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        code = SCRIPT.format(here=str(HERE), strategy=strategy)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        outputs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
    assert outputs[0]["json"] == here.to_json()
    assert outputs[0]["bits"] == repr(bits(here))


def executors():
    if "executor" not in inspect.signature(gp.check).parameters:
        return []
    # spawn, not fork: other tests may have started JAX's threads, and forking those deadlocks
    spawn = multiprocessing.get_context("spawn")
    return [
        ("threads", lambda: ThreadPoolExecutor(3)),
        pytest.param("processes", lambda: ProcessPoolExecutor(2, mp_context=spawn), marks=pytest.mark.slow),
    ]


@pytest.mark.parametrize("strategy", ["full", "directional"])
@pytest.mark.parametrize("name, make", executors() or [pytest.param(None, None, marks=pytest.mark.skip("no executor= yet"))])
def test_serial_and_parallel_give_the_same_report(strategy, name, make):
    if strategy not in _options.STRATEGIES:
        pytest.skip(f"strategy {strategy!r} not in this tree")
    serial = run(seed=11, strategy=strategy)
    with make() as executor:
        parallel = run(seed=11, strategy=strategy, executor=executor)
    assert bits(parallel) == bits(serial)
    assert parallel.to_json() == serial.to_json()


def test_seed_is_recorded_and_reproduces_the_report():
    report = run(seed=123)
    assert report.seed == 123
    assert bits(run(seed=report.seed)) == bits(report)


def test_torch_adapter_is_deterministic():
    torch = pytest.importorskip("torch")
    gpt = pytest.importorskip("gradprobe.adapters.torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    reports = [gpt.check_module(model, lambda out: out.pow(2).sum(), x, seed=4) for _ in range(2)]
    assert reports[0].status == "pass"
    assert bits(reports[0]) == bits(reports[1])
    # a non-scalar loss goes through a random cotangent drawn from the seed: same seed, same report
    vector = [gpt.check_module(model, lambda out: out.sin(), x, seed=9) for _ in range(2)]
    assert bits(vector[0]) == bits(vector[1])


def test_check_vjp_cotangent_comes_from_the_seed():
    A = np.arange(6.0).reshape(3, 2) / 5
    f = lambda x: A @ np.sin(x)  # noqa: E731
    vjp = lambda x, v: np.cos(x) * (A.T @ v)  # noqa: E731
    x = np.array([0.3, -0.7])
    assert bits(gp.check_vjp(f, vjp, x, seed=8)) == bits(gp.check_vjp(f, vjp, x, seed=8))


def test_jax_adapter_is_deterministic():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    fn = lambda p: jnp.tanh(p["w"] * 2.0) * p["b"]  # noqa: E731
    params = {"w": jnp.array([0.5, -1.0, 0.25]), "b": jnp.array([1.5, 0.5, -2.0])}
    assert bits(gp.jax.check(fn, params, seed=3)) == bits(gp.jax.check(fn, params, seed=3))
