"""gp.torch.check at 1e6 parameters against torch.autograd.gradcheck's fast mode.

The MLP of benchmarks/scale.py (1,001,568 float64 parameters, its correct gradient) as a torch
function of its six tensors, checked by `gp.torch.check(fn, *tensors)` and by
`torch.autograd.gradcheck(fn, tensors, fast_mode=True)`, interleaved; gp.torch.check once more
with its per-point passes kept in numpy (gradprobe/_passes.py: `on_torch_threads` made a no-op), to
show what running them on torch's threads buys; and once with `vectorized=True`, its points batched
through vmap as every check's were before (a directional check now evaluates one point per call).
Medians of `--repeats` runs, run k with seed k (every side with the same one): the seed decides
how many evaluations a directional check takes (12 or 14 on this MLP: its ladder stops after two
levels or three), so one seed would time one draw's luck; the evaluations column counts the runs
that took each number. `--widths` picks the hidden widths (980: 1,001,568 parameters; 296:
100,056; 80: 9,768; 18: 1,088).

With --numpy-loss: `gp.check` of the same MLP written in numpy (scale.NumpyModel: its matrix
products on numpy's BLAS threads), torch loaded, its per-point passes in numpy (as gp.check runs
them) and forced onto torch's threads (`on_torch_threads` around the check): why gp.check keeps
them in numpy.

    python benchmarks/torch_check_scale.py --threads 1 2
    python benchmarks/torch_check_scale.py --threads 2 --widths 18 80 296 980
    python benchmarks/torch_check_scale.py --threads 2 --numpy-loss
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import time

import numpy as np
import torch

import gradprobe as gp
from gradprobe import _passes
from gradprobe.adapters import torch as gp_torch

import scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--widths", type=int, nargs="+", default=[980], help="hidden widths of the MLP")
    parser.add_argument("--numpy-loss", action="store_true", help="gp.check of a numpy loss, passes in numpy and on torch")
    args = parser.parse_args()
    if args.numpy_loss:
        numpy_loss(args)
        return
    model = scale.TorchModel(torch)

    def fn(*t):
        return model.forward(*t)

    print("| parameters | torch threads | gp.torch.check | the same, passes in numpy | the same, vectorized=True | gradcheck fast "
          "| gp.torch.check / gradcheck fast | evaluations | verdict |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for width in args.widths:
        params = scale.make_params(width)
        tensors = [torch.from_numpy(params[k]).clone().requires_grad_() for k in scale.NAMES]
        for threads in args.threads:
            torch.set_num_threads(threads)
            times: dict[str, list[float]] = {"torch": [], "numpy": [], "vmap": [], "gradcheck": []}
            evaluations: collections.Counter[int] = collections.Counter()
            statuses: set[str] = set()
            sides = [("torch", _passes.on_torch_threads, {}), ("numpy", contextlib.nullcontext, {}),
                     ("vmap", _passes.on_torch_threads, {"vectorized": True})]  # fmt: skip
            for repeat in range(args.repeats):
                for side, context, options in sides[:: 1 if repeat % 2 else -1]:  # each side first half the time
                    gp_torch.passes.on_torch_threads = context
                    start = time.perf_counter()
                    report = gp.torch.check(fn, *tensors, progress=False, seed=repeat, **options)
                    times[side].append(time.perf_counter() - start)
                    if side == "torch":
                        evaluations[report.nfev] += 1
                        statuses.add(report.status)
                start = time.perf_counter()
                torch.autograd.gradcheck(fn, tuple(tensors), fast_mode=True)
                times["gradcheck"].append(time.perf_counter() - start)
            gp_torch.passes.on_torch_threads = sides[0][1]
            ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
            print(f"| {sum(t.numel() for t in tensors):,} | {threads} | {ms['torch']:.1f} ms | {ms['numpy']:.1f} ms | "
                  f"{ms['vmap']:.1f} ms | {ms['gradcheck']:.1f} ms | {ms['torch'] / ms['gradcheck']:.2f}x | "
                  f"{', '.join(f'{n} ({count}x)' for n, count in sorted(evaluations.items()))} | {', '.join(sorted(statuses))} |", flush=True)


def numpy_loss(args: argparse.Namespace) -> None:
    model, params = scale.NumpyModel(), scale.make_params(980)
    loss, grad = model.loss, model.grad(False)
    print("| torch threads | gp.check, passes in numpy | the same, passes on torch's threads | evaluations | verdict |")
    print("|---:|---:|---:|---:|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {"numpy": [], "torch": []}
        sides = [("numpy", contextlib.nullcontext), ("torch", _passes.on_torch_threads)]
        for repeat in range(args.repeats):
            for side, context in sides[:: 1 if repeat % 2 else -1]:
                start = time.perf_counter()
                with context():
                    report = gp.check(loss, grad, params, progress=False)
                times[side].append(time.perf_counter() - start)
        ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        print(f"| {threads} | {ms['numpy']:.0f} ms | {ms['torch']:.0f} ms | {report.nfev} | {report.status} |")


if __name__ == "__main__":
    main()
