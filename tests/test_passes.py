"""The per-point passes on torch's threads: the same bits as numpy's, the same report, and only
where the loss runs in torch."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import gradprobe as gp
from gradprobe import _passes as passes

torch = pytest.importorskip("torch")

SIZE = passes.MIN_SIZE + 1001  # above the size from which torch runs the passes


@pytest.fixture
def torch_threads():
    """torch on two threads (the passes stay in numpy on one), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def torch_calls(monkeypatch):
    """How many passes ran on torch's side."""
    calls = []
    chosen = passes._torch

    def counting(out, *operands):
        found = chosen(out, *operands)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(passes, "_torch", counting)
    return calls


def awkward(rng, size):
    """Values of every kind: ordinary, tiny, subnormal, huge, signed zeros, inf and NaN."""
    values = rng.standard_normal(size) * 10.0 ** rng.integers(-300, 300, size)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1.7e308, -1.7e308, 0.5, -0.5])
    values[rng.choice(size, 2000, replace=False)] = rng.choice(specials, 2000)
    return values


def same_bits(a, b):
    """The same float64 values bit for bit, but for NaNs, which need only be NaNs on both sides
    (their sign bit may differ)."""
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes()


def both_sides(operation, *operands):
    """`operation(*operands, out=...)` with torch allowed and with numpy only."""
    with passes.on_torch_threads():
        on_torch = operation(*operands, out=np.empty(SIZE))
    return on_torch, operation(*operands, out=np.empty(SIZE))


@pytest.mark.parametrize(
    "operation, second",
    [
        (passes.add, "array"), (passes.add, 0.1), (passes.subtract, "array"), (passes.subtract, 1.0),
        (passes.multiply, "array"), (passes.multiply, 3.0e-7), (passes.maximum, 0.25),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_each_pass_gives_numpys_bits_on_torch(torch_threads, torch_calls, operation, second):
    rng = np.random.default_rng(0)
    a = awkward(rng, SIZE)
    b = awkward(rng, SIZE) if second == "array" else second
    with np.errstate(all="ignore"):
        on_torch, on_numpy = both_sides(operation, a, b)
    assert torch_calls[0] is True  # torch really ran the first
    assert same_bits(on_torch, on_numpy)


def test_absolute_and_copy_give_numpys_bits_on_torch(torch_threads, torch_calls):
    rng = np.random.default_rng(1)
    a = awkward(rng, SIZE)
    for operation, operands in [
        (passes.absolute, (a,)),
        (passes.copy, (a,)), (passes.copy, (np.clip(a, -1e30, 1e30).astype(np.float32),)),
    ]:
        with np.errstate(all="ignore"):
            on_torch, on_numpy = both_sides(operation, *operands)
        assert same_bits(on_torch, on_numpy)
    assert torch_calls[0] is True


def test_read_only_inputs_are_read_without_a_warning(torch_threads, torch_calls):
    a = np.arange(float(SIZE))
    a.setflags(write=False)
    with warnings.catch_warnings(), passes.on_torch_threads():
        warnings.simplefilter("error")
        result = passes.multiply(a, 2.0, out=np.empty(SIZE))
    assert torch_calls == [True] and result[-1] == 2.0 * (SIZE - 1)


@pytest.mark.parametrize("threads", [1, 2], ids=["torch on 1 thread", "torch on 2 threads"])
def test_small_vectors_one_thread_other_dtypes_and_plain_checks_stay_in_numpy(torch_calls, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with passes.on_torch_threads():
            passes.add(np.ones(10), 1.0, out=np.empty(10))
            passes.add(np.ones(SIZE, dtype=np.float32), 1.0, out=np.empty(SIZE, dtype=np.float32))
            passes.add(np.ones(2 * SIZE)[::2], 1.0, out=np.empty(SIZE))  # not contiguous
            passes.add(np.ones(SIZE), 1.0, out=np.empty(SIZE))
        passes.add(np.ones(SIZE), 1.0, out=np.empty(SIZE))  # outside a torch function's check
    finally:
        torch.set_num_threads(before)
    assert torch_calls == [False, False, False, threads > 1, False]


def mlp(rng):
    """A tanh MLP of 91,200 float64 parameters in torch, and its batch."""
    x, y = torch.from_numpy(rng.standard_normal((16, 300))), torch.from_numpy(rng.standard_normal((16, 4)))
    params = {"W1": rng.standard_normal((300, 300)) / 17, "W2": rng.standard_normal((300, 4)) / 17}

    def forward(W1, W2):
        return 0.5 * ((torch.tanh(x @ W1) @ W2 - y) ** 2).sum()

    return params, forward


def test_a_large_check_gives_the_same_report_with_and_without_torch(torch_threads, torch_calls):
    """The MLP, a right and a doubled gradient: the report is the same bit for bit whether the
    per-point passes ran on torch's threads or in numpy."""
    params, forward = mlp(np.random.default_rng(2))

    def loss(p):
        with torch.no_grad():
            return float(forward(*(torch.from_numpy(p[k]) for k in ("W1", "W2"))))

    def grad(wrong):
        def g(p):
            tensors = [torch.from_numpy(p[k]).requires_grad_() for k in ("W1", "W2")]
            forward(*tensors).backward()
            out = {"W1": tensors[0].grad.numpy(), "W2": tensors[1].grad.numpy()}
            if wrong:
                out["W1"][3, 7] *= 2.0
            return out

        return g

    for wrong in (False, True):
        with passes.on_torch_threads():
            on_torch = gp.check(loss, grad(wrong), params, progress=False)
        assert any(torch_calls)
        torch_calls.clear()
        on_numpy = gp.check(loss, grad(wrong), params, progress=False)
        assert not any(torch_calls)  # gp.check of any loss keeps them in numpy
        assert json.dumps(on_torch.to_dict(values=True)) == json.dumps(on_numpy.to_dict(values=True))
        assert on_torch.status == ("fail" if wrong else "pass")


def test_a_torch_functions_check_runs_its_passes_on_torchs_threads(torch_threads, torch_calls):
    params, forward = mlp(np.random.default_rng(3))
    report = gp.torch.check(forward, *(torch.from_numpy(v).requires_grad_() for v in params.values()), progress=False)
    assert report.status == "pass" and any(torch_calls)
