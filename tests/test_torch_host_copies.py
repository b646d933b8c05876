"""Issue 15: a torch loss evaluation makes no parameter-sized copy of the values the core hands it.

The core builds fresh arrays for every evaluation (`Objective`); on the CPU, in the tensor's own
dtype (or float64 for the reference), the adapter's tensors share their memory. Counted here:
every torch allocation of at least one byte per parameter (the profiler's memory records) and
whether numpy made one (tracemalloc's peak), during one evaluation of a function that allocates
nothing of that size itself.
"""

import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import gradprobe as gp  # noqa: E402
from gradprobe.adapters import torch as adapter  # noqa: E402

N = 100_000


class _Captured(Exception):
    pass


def captured(monkeypatch, run):
    """The adapter's function (`_Function`) and the parameters it hands the core; the check stops there."""
    seen = {}

    def capture(loss, grad, params, *rest):
        seen.update(function=loss.__self__, params=params)
        raise _Captured

    monkeypatch.setattr(adapter, "check_contracted", capture)
    with pytest.raises(_Captured):
        run()
    return seen["function"], seen["params"]


def large_allocations(call):
    """Allocations of at least N bytes while `call()` runs: torch's, plus one if numpy made any."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        tracemalloc.start()
        try:
            call()
        finally:
            numpy_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return sum(e.self_cpu_memory_usage >= N for e in prof.events()) + (numpy_peak >= N)


def run_check(dtype):
    x = torch.linspace(-1, 1, N, dtype=dtype).requires_grad_()
    return lambda: gp.torch.check(lambda x: torch.dot(x, x), x, vectorized=False)


def run_check_module(dtype):
    torch.manual_seed(0)
    net = torch.nn.Linear(1000, N // 1000, bias=False).to(dtype)
    X, y = torch.randn(1, 1000, dtype=dtype), torch.randn(1, N // 1000, dtype=dtype)
    return lambda: gp.torch.check_module(net, torch.nn.MSELoss(), X, y, vectorized=False)


@pytest.mark.parametrize("entry", [run_check, run_check_module], ids=["check", "check_module"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64], ids=["bfloat16", "float32", "float64"])
@pytest.mark.parametrize("reference", [False, True], ids=["own-dtype", "float64-reference"])
def test_no_parameter_sized_copy_per_evaluation(monkeypatch, entry, dtype, reference):
    if dtype == torch.bfloat16:
        pytest.importorskip("ml_dtypes")
    function, params = captured(monkeypatch, entry(dtype))
    assert sum(v.size for v in params.values()) == N

    def fresh():  # what the core hands each evaluation: new arrays, in the values' dtype
        return {name: v.astype(np.float64 if reference else v.dtype) for name, v in params.items()}

    def batch():
        return {name: np.stack([v, v]) for name, v in fresh().items()}

    function.loss(fresh())  # the first float64 call finds out how to evaluate the reference
    values = fresh()
    assert large_allocations(lambda: function.loss(values)) == 0
    if entry is run_check:  # the batched (vmap) path too; vmap_consistent sets its rows per call
        function.vmap_consistent()
        function.batched_loss(batch())
        rows = batch()
        assert large_allocations(lambda: function.batched_loss(rows)) == 0


def test_a_loss_that_keeps_its_inputs_keeps_their_values():
    """The tensors share the core's arrays; one the loss keeps is never overwritten by a later point."""
    kept = []

    def keeping(x):
        kept.append((x, x.detach().clone()))
        return (x**3).sum()

    x = torch.linspace(-1, 1, 300, dtype=torch.float64).requires_grad_()
    assert gp.torch.check(keeping, x, vectorized=False).status == "pass"
    assert len(kept) > 10
    for tensor, copy in kept:
        assert torch.equal(tensor.detach(), copy)
