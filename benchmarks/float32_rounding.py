"""How far a correct float32 gradient is from the float64 run of the same backward.

Under the float64 reference, gradprobe excuses a float32 gradient's difference from its float64
run up to `strategies._analytic.ROUNDING_ULPS` ulps of float32 of the larger of the element and its
tensor's RMS, and, in a tensor whose float64 gradient is zero at that precision (a bias feeding a
batch norm in train mode), up to `FLAT_RESIDUE` of the whole gradient's RMS. Both grow with the
length of the sums the backward does over the batch: a convolution's bias gradient sums over every
image and pixel, and with cancellation between them its float32 rounding is large against itself.

This measures both quantities for torch's own layers (autograd, float32 against float64 on the same
float32 weights and batch, torch on 1 thread), the largest over `--seeds` seeds and every tensor:

* ``conv``: Conv2d(3, 16) - [BatchNorm2d] - ReLU - mean over the image - Linear, in train mode,
  in eval mode (BatchNorm2d on its running statistics), and without the batch norm;
* ``linear``: Linear(64, 256) - BatchNorm1d - ReLU - Linear, train mode.

    python benchmarks/float32_rounding.py
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

EPS = float(np.finfo(np.float32).eps)
nn = torch.nn
ACTIVATION = nn.ReLU
CASES = [
    ("conv", "train", 32, 16), ("conv", "train", 64, 32), ("conv", "eval", 64, 16), ("conv", "eval", 64, 32),
    ("conv", "none", 64, 32), ("conv", "none", 16, 64), ("linear", "train", 256, 0), ("linear", "train", 4096, 0),
]  # fmt: skip


class MeanOverImage(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def model(kind: str, norm: str) -> nn.Module:
    if kind == "linear":
        return nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), ACTIVATION(), nn.Linear(256, 10))
    layers = [nn.Conv2d(3, 16, 3, padding=1), *([nn.BatchNorm2d(16)] if norm != "none" else []), ACTIVATION(), MeanOverImage(), nn.Linear(16, 10)]
    net = nn.Sequential(*layers)
    if norm == "eval":
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def measure(kind: str, norm: str, batch: int, side: int, seed: int) -> tuple[float, float]:
    """Over every tensor: the largest |g32 - g64| in ulps of float32 of max(|g64 element|, the
    tensor's RMS); over the tensors whose float64 gradient is zero at float32's resolution, the
    largest |g32 - g64| in ulps of the whole gradient's RMS (0 if none)."""
    torch.manual_seed(seed)
    net = model(kind, norm).train(norm != "eval")
    x = torch.randn(batch, 3, side, side) if kind == "conv" else torch.randn(batch, 64)
    y = torch.randint(0, 10, (batch,))
    g32 = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), list(net.parameters()))
    wide = copy.deepcopy(net).double()
    g64 = torch.autograd.grad(nn.functional.cross_entropy(wide(x.double()), y), list(wide.parameters()))
    whole = torch.cat([g.flatten() for g in g64]).pow(2).mean().sqrt().item()
    own, flat = 0.0, 0.0
    for a, b in zip(g32, g64):
        difference = (a.double() - b).abs()
        if b.abs().max().item() <= 1024 * EPS * whole:
            flat = max(flat, difference.max().item() / (EPS * whole))
        else:
            scale = torch.maximum(b.abs(), b.pow(2).mean().sqrt())
            own = max(own, (difference / scale).max().item() / EPS)
    return own, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| net | batch norm | batch | image | largest difference, ulps of max(element, tensor RMS) | zero-gradient tensors: largest, ulps of the whole RMS |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, norm, batch, side in CASES:
        found = [measure(kind, norm, batch, side, seed) for seed in range(args.seeds)]
        own, flat = max(f[0] for f in found), max(f[1] for f in found)
        image = f"{side} x {side}" if kind == "conv" else ""
        print(f"| {kind} | {norm} | {batch} | {image} | {own:,.0f} | {f'{flat:,.0f}' if flat else ''} |")


if __name__ == "__main__":
    main()
