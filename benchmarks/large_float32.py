"""A float32 model of 2.1 million parameters, checked with its autograd gradient and with one
weight-gradient element of its 1024 x 1024 layer doubled (through a custom `autograd.Function`):
`gp.torch.check_module` with its defaults.

Two planted elements: (17, 3), an ordinary one, and the layer's largest; then the autograd
gradient on a second batch. Doubling an element adds
an error of relative size |g_e| / ||g_W|| to the layer's gradient; the script prints it beside the
check's stated resolution, since an error below the resolution may pass (honestly: the report
claims nothing finer).

Run: python benchmarks/large_float32.py   (prints the reports and their wall times)
"""

from __future__ import annotations

import time

import torch

import gradprobe as gp


class DoubledElement(torch.autograd.Function):
    """x W^T + b, whose backward doubles the weight gradient's element `element`."""

    element = (17, 3)

    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        gW = g.T @ x
        gW[DoubledElement.element] *= 2
        return g @ W, gW, g.sum(0)


class Layer(torch.nn.Module):
    def __init__(self, n_in: int, n_out: int, planted: bool) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)
        self.bias = torch.nn.Parameter(torch.zeros(n_out))
        self.planted = planted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.planted:
            return DoubledElement.apply(x, self.weight, self.bias)
        return x @ self.weight.T + self.bias


def model(planted: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), Layer(1024, 1024, planted), torch.nn.ReLU(),
        torch.nn.Linear(1024, 768), torch.nn.GELU(), torch.nn.Linear(768, 10),
    )  # fmt: skip


def main() -> None:
    torch.manual_seed(1)
    X, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
    loss_fn = torch.nn.CrossEntropyLoss()
    reference = model(False)
    gW = torch.autograd.grad(loss_fn(reference(X), y), reference[2].weight)[0]
    largest = tuple(int(i) for i in torch.unravel_index(torch.argmax(gW.abs()), gW.shape))
    for element in (None, (17, 3), largest):
        net = model(element is not None)
        if element is not None:
            DoubledElement.element = element
        start = time.perf_counter()
        report = gp.torch.check_module(net, loss_fn, X, y)
        seconds = time.perf_counter() - start
        size = sum(p.numel() for p in net.parameters())
        what = "autograd" if element is None else f"2.weight{list(element)} doubled"
        if element is not None:
            what += f" (error of relative size {float(gW[element].abs() / gW.norm()):.1e} in 2.weight)"
        print(f"== {what}: {size:,} float32 parameters, {seconds:.1f} s")
        print(report)
    # Another batch (torch seed 0): there the first layer's directions cross ReLU kinks for about
    # 17 halvings of the step, and it stayed undecided before directions could descend that deep.
    torch.manual_seed(0)
    X, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
    start = time.perf_counter()
    report = gp.torch.check_module(model(False), loss_fn, X, y)
    print(f"== autograd, batch of torch seed 0: {time.perf_counter() - start:.1f} s")
    print(report)


if __name__ == "__main__":
    main()
