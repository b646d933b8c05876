"""On a CUDA device a check gives the verdicts it gives on the CPU, with the same seed; skipped
without CUDA (the points are still made on the host and copied per evaluation: issue 15, point 3)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

import gradprobe as gp  # noqa: E402


class _Doubled(torch.autograd.Function):
    """tanh whose backward doubles the gradient of element 3."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        g = grad * (1 - y**2)
        g[3] = 2 * g[3]
        return g


def _model(device, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(27, 4)
    ).to(device=device, dtype=dtype)
    x = torch.randn(5, 1, 8, 8, device=device, dtype=dtype)
    y = torch.randint(0, 4, (5,), device=device)
    return model, x, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_cnn_on_cuda_gets_the_verdict_it_gets_on_the_cpu(dtype):
    reports = []
    for device in ("cpu", "cuda"):
        model, x, y = _model(device, dtype)
        reports.append(gp.torch.check_module(model, torch.nn.CrossEntropyLoss(), x, y, seed=3))
        assert next(model.parameters()).device.type == device  # left where it was
    cpu, cuda = reports
    assert cpu.status == cuda.status == "pass"
    assert {n: t.status for n, t in cpu.tensors.items()} == {n: t.status for n, t in cuda.tensors.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_wrong_backward_on_cuda_is_named_as_on_the_cpu(dtype):
    found = []
    for device in ("cpu", "cuda"):
        x = torch.linspace(-1, 1, 12, device=device, dtype=dtype).requires_grad_()
        report = gp.torch.check(_Doubled.apply, x, seed=3)
        found.append((report.status, report.tensors["input0"].diagnosis, [w.index for w in report.tensors["input0"].worst[:1]]))
    assert found[0] == found[1] and found[0][0] == "fail" and found[0][2] == [(3,)]
