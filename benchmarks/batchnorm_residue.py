"""How large a float32 gradient is whose exact value is zero: a bias feeding a batch norm.

Batch norm subtracts each channel's mean, so the loss does not depend on a bias added before it:
that bias's exact gradient is zero, and autograd's float32 one is the rounding left over from sums
over the batch (and the image, for a convolution). `strategies._analytic.FLAT_RESIDUE` excuses such
a residue up to a fraction of the whole gradient's RMS; this measures it against the float64
gradient of the same model, in ulps of float32 of that RMS, on a standard CNN (Conv2d-BatchNorm2d-
ReLU-MaxPool-Conv2d-BatchNorm2d-ReLU-pool-Linear, train mode, cross entropy) at several batch and
image sizes, and on a Linear-BatchNorm1d-ReLU-Linear net. The largest over `--seeds` seeds.

    python benchmarks/batchnorm_residue.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

EPS = float(np.finfo(np.float32).eps)
CASES = [("conv", 32, 16), ("conv", 16, 32), ("conv", 8, 64), ("conv", 64, 32), ("linear", 256, 0), ("linear", 4096, 0)]


def model(kind: str) -> torch.nn.Module:
    nn = torch.nn
    if kind == "conv":
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
        )  # fmt: skip
    return nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 10))


def residue(kind: str, batch: int, side: int, seed: int) -> tuple[float, float]:
    """The largest |float32 - float64| over the biases feeding a batch norm, in ulps of float32 of
    the whole float64 gradient's RMS; and that RMS."""
    torch.manual_seed(seed)
    net = model(kind).train()
    x = torch.randn(batch, 3, side, side) if kind == "conv" else torch.randn(batch, 64)
    y = torch.randint(0, 10, (batch,))
    g32 = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x), y), list(net.parameters()))
    net = net.double()
    g64 = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x.double()), y), list(net.parameters()))
    rms = torch.cat([g.flatten() for g in g64]).pow(2).mean().sqrt().item()
    fed = [i for i, (name, _) in enumerate(net.named_parameters()) if name in ("0.bias", "4.bias")]
    return max((g32[i].double() - g64[i]).abs().max().item() for i in fed) / (EPS * rms), rms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| net | batch | image | activations per channel | largest residue (ulps of float32 of the gradient's RMS) | as a fraction of the RMS |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, batch, side in CASES:
        worst = max(residue(kind, batch, side, seed)[0] for seed in range(args.seeds))
        count = batch * side * side if kind == "conv" else batch
        image = f"{side} x {side}" if kind == "conv" else ""
        print(f"| {kind} | {batch} | {image} | {count:,} | {worst:,.0f} | {worst * EPS:.1e} |")


if __name__ == "__main__":
    main()
