"""Scale benchmark: gradprobe on MLPs of about 1e3, 1e4, 1e5 and 1e6 float64 parameters.

Each MLP (32 inputs, two tanh hidden layers of equal width, 8 outputs, a batch of 64, mean squared
error) is checked twice: with its correct gradient and with exactly one wrong element (W2[17, 3]
doubled, planted in the backward pass). Per size, in one run:

* gradprobe with its defaults (strategy "auto"): evaluations, wall time, and the wall time until
  the verdict (before localization); verdict; whether W2[17, 3] was named;
* a full coordinate check (gradprobe strategy="full"): run whole when it takes under a minute,
  otherwise timed on a budget-limited subset of coordinates and extrapolated (marked "extrap.");
* torch.autograd.gradcheck, fast and slow modes, when torch is installed. The slow mode is
  extrapolated from a subset of W2's elements when it would take over a minute.

Both tools evaluate the same loss: the torch model, which gradprobe calls on zero-copy views of its
numpy parameters. Memory: gradprobe's peak traced allocation per parameter (tracemalloc, separate
run), which stays flat if nothing n x n or n x k is ever allocated.

gradprobe's own overhead: the user's loss and grad calls are timed inside the verdict, and
(verdict wall time - evaluations x median loss call - grad calls x median grad call) / evaluations
is what gradprobe itself spends per evaluation (making points, measuring them, judging).

With --threads, the quick checks (gradprobe auto and torch fast, interleaved) run once per torch
thread count (torch.set_num_threads); the full check, torch's slow mode and the memory run once
per size, at the first thread count.

    python benchmarks/scale.py                 # all sizes, writes nothing
    python benchmarks/scale.py --sizes 18 80   # hidden widths to run
    python benchmarks/scale.py --markdown      # the table for benchmarks/RESULTS.md
    python benchmarks/scale.py --threads 1 2 0 # torch on 1, 2 and all (os.cpu_count()) threads
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import tracemalloc
from datetime import datetime, timezone

import numpy as np

import gradprobe as gp

D_IN, D_OUT, BATCH = 32, 8, 64
WRONG_TENSOR, WRONG_INDEX = "W2", (17, 3)
#: Hidden widths giving about 1e3, 1e4, 1e5 and 1e6 parameters.
WIDTHS = (18, 80, 296, 980)
#: Run a check whole only when it is predicted to take less than this.
WHOLE_LIMIT_S = 60.0
SEED = 0
REPEATS = [5]


# -- the model ------------------------------------------------------------------------------------


def make_params(hidden: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return {
        "W1": rng.standard_normal((D_IN, hidden)) / np.sqrt(D_IN),
        "b1": 0.1 * rng.standard_normal(hidden),
        "W2": rng.standard_normal((hidden, hidden)) / np.sqrt(hidden),
        "b2": 0.1 * rng.standard_normal(hidden),
        "W3": rng.standard_normal((hidden, D_OUT)) / np.sqrt(hidden),
        "b3": 0.1 * rng.standard_normal(D_OUT),
    }


def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED + 1)
    return rng.standard_normal((BATCH, D_IN)), rng.standard_normal((BATCH, D_OUT))


class TorchModel:
    """The MLP in torch (float64); `planted` doubles the gradient of W2[17, 3] in backward."""

    def __init__(self, torch) -> None:
        self.torch = torch
        x, y = make_data()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

        class Plant(torch.autograd.Function):
            @staticmethod
            def forward(ctx, w):
                return w.view_as(w)

            @staticmethod
            def backward(ctx, g):
                g = g.clone()
                g[WRONG_INDEX] *= 2.0
                return g

        self.plant = Plant.apply

    def forward(self, W1, b1, W2, b2, W3, b3, planted: bool = False):
        torch = self.torch
        if planted:
            W2 = self.plant(W2)
        h1 = torch.tanh(self.x @ W1 + b1)
        h2 = torch.tanh(h1 @ W2 + b2)
        out = h2 @ W3 + b3
        return 0.5 * ((out - self.y) ** 2).sum() / BATCH

    def loss(self, p) -> float:
        torch = self.torch
        with torch.no_grad():
            return float(self.forward(*(torch.from_numpy(p[k]) for k in NAMES)))

    def grad(self, planted: bool):
        torch = self.torch

        def grad(p):
            tensors = [torch.from_numpy(p[k]).requires_grad_() for k in NAMES]  # fresh arrays: no copy
            self.forward(*tensors, planted=planted).backward()
            return {k: t.grad.numpy() for k, t in zip(NAMES, tensors)}

        return grad


class NumpyModel:
    """The same MLP in numpy, used when torch is not installed."""

    def __init__(self) -> None:
        self.x, self.y = make_data()

    def loss(self, p) -> float:
        h1 = np.tanh(self.x @ p["W1"] + p["b1"])
        h2 = np.tanh(h1 @ p["W2"] + p["b2"])
        out = h2 @ p["W3"] + p["b3"]
        return float(0.5 * np.sum((out - self.y) ** 2) / BATCH)

    def grad(self, planted: bool):
        def grad(p):
            h1 = np.tanh(self.x @ p["W1"] + p["b1"])
            h2 = np.tanh(h1 @ p["W2"] + p["b2"])
            d = (h2 @ p["W3"] + p["b3"] - self.y) / BATCH
            d2 = (d @ p["W3"].T) * (1 - h2**2)
            d1 = (d2 @ p["W2"].T) * (1 - h1**2)
            g = {"W1": self.x.T @ d1, "b1": d1.sum(0), "W2": h1.T @ d2, "b2": d2.sum(0), "W3": h2.T @ d, "b3": d.sum(0)}
            if planted:
                g["W2"][WRONG_INDEX] *= 2.0
            return g

        return grad


NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


class Timed:
    """Wraps the loss (or grad) to count calls, time each one and time-stamp its end."""

    def __init__(self, fn) -> None:
        self.inner, self.stamps, self.durations = fn, [], []

    def __call__(self, p):
        start = time.perf_counter()
        value = self.inner(p)
        self.stamps.append(time.perf_counter())
        self.durations.append(self.stamps[-1] - start)
        return value


# -- gradprobe -----------------------------------------------------------------------------------------


def named(report) -> bool:
    tensor = report.tensors[WRONG_TENSOR]
    return tensor.status == "fail" and any(e.index == WRONG_INDEX for e in tensor.worst)


def run_gradprobe(model, params, planted: bool) -> dict:
    loss, grad = Timed(model.loss), Timed(model.grad(planted))
    start = time.perf_counter()
    report = gp.check(loss, grad, params, progress=False)
    wall = time.perf_counter() - start
    phases = report.coverage.evaluations
    verdict_calls = phases.get("setup", 0) + phases.get("verdict", phases.get("coordinates", 0))
    verdict_end = loss.stamps[verdict_calls - 1] if verdict_calls else start + wall
    verdict_grads = [d for d, end in zip(grad.durations, grad.stamps) if end <= verdict_end]
    return {
        "evals": report.nfev,
        "wall": wall,
        "verdict_wall": verdict_end - start,
        "verdict_evals": verdict_calls,
        "verdict_grads": len(verdict_grads),
        "loss_times": loss.durations[:verdict_calls],  # the user's calls during the verdict
        "grad_times": verdict_grads,
        "verdict": report.status,
        "named": named(report),
        "strategy": report.strategy,
        "resolution": report.resolution,
        "report": report,
    }


def run_full(model, params, planted: bool, n: int) -> dict:
    """gradprobe strategy="full": whole if fast enough, else a timed subset, extrapolated."""
    probe_budget = 600 if n > 200_000 else 2000
    loss = Timed(model.loss)
    start = time.perf_counter()
    report = gp.check(loss, model.grad(planted), params, strategy="full", budget=probe_budget, progress=False)
    wall = time.perf_counter() - start
    covered = sum(t.coverage * math.prod(t.shape) for t in report.tensors.values())
    setup = report.coverage.evaluations.get("setup", 0)
    if covered >= n:
        return {"evals": report.nfev, "wall": wall, "verdict": report.status, "named": named(report), "extrapolated": False}
    per_element_evals = (report.nfev - setup) / covered
    per_eval = (loss.stamps[-1] - loss.stamps[setup - 1]) / (report.nfev - setup)
    predicted_evals = setup + per_element_evals * n
    if predicted_evals * per_eval < WHOLE_LIMIT_S:
        loss = Timed(model.loss)
        start = time.perf_counter()
        report = gp.check(loss, model.grad(planted), params, strategy="full", progress=False)
        wall = time.perf_counter() - start
        return {"evals": report.nfev, "wall": wall, "verdict": report.status, "named": named(report), "extrapolated": False}
    return {
        "evals": int(predicted_evals),
        "wall": wall + (predicted_evals - report.nfev) * per_eval,
        "verdict": "fail" if planted else "pass",  # every element is probed exactly: it would be found
        "named": planted,
        "extrapolated": True,
        "subset": int(covered),
    }


def peak_bytes_per_parameter(model, params, n: int) -> float:
    tracemalloc.start()
    try:
        gp.check(model.loss, model.grad(True), params, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / n


# -- torch.autograd.gradcheck ----------------------------------------------------------------------------


def run_torch(torch, model, params, planted: bool, fast: bool, n: int) -> dict:
    import importlib

    gc_module = importlib.import_module("torch.autograd.gradcheck")

    calls = [0]

    def fn(*tensors):
        calls[0] += 1
        return model.forward(*tensors, planted=planted)

    inputs = tuple(torch.from_numpy(params[k].copy()).requires_grad_() for k in NAMES)
    # On failure, fast mode recomputes the whole Jacobian in slow mode just for its error message
    # (2n evaluations): skipped here, and said so in the table.
    original = gc_module._run_slow_mode_and_get_error
    gc_module._run_slow_mode_and_get_error = lambda *args, **kwargs: " (slow-mode error message skipped)"
    try:
        if not fast:
            predicted = predict_torch_slow(torch, model, params, planted, n)
            if predicted["wall"] > WHOLE_LIMIT_S:
                return predicted
        start = time.perf_counter()
        ok = torch.autograd.gradcheck(fn, inputs, fast_mode=fast, raise_exception=False)
        wall = time.perf_counter() - start
    finally:
        gc_module._run_slow_mode_and_get_error = original
    return {"evals": calls[0], "wall": wall, "verdict": "pass" if ok else "fail", "named": False, "extrapolated": False}


def predict_torch_slow(torch, model, params, planted: bool, n: int, subset: int = 256) -> dict:
    """Slow gradcheck of the first `subset` elements of W2 (a separate input tensor; the rest of
    the model held fixed), scaled to all n parameters."""
    flat = params["W2"].ravel().copy()
    head = torch.from_numpy(flat[:subset].copy()).requires_grad_()
    tail = torch.from_numpy(flat[subset:].copy())
    fixed = {k: torch.from_numpy(params[k].copy()) for k in NAMES}
    calls = [0]

    def fn(h):
        calls[0] += 1
        W2 = torch.cat([h, tail]).view_as(fixed["W2"])
        return model.forward(fixed["W1"], fixed["b1"], W2, fixed["b2"], fixed["W3"], fixed["b3"], planted=planted)

    start = time.perf_counter()
    ok = torch.autograd.gradcheck(fn, (head,), fast_mode=False, raise_exception=False)
    wall = time.perf_counter() - start
    per_element = wall / subset
    return {
        "evals": 2 * n + (calls[0] - 2 * subset),
        "wall": per_element * n,
        "verdict": "fail" if planted else ("pass" if ok else "fail"),
        "named": False,
        "extrapolated": True,
        "subset": subset,
    }


def median_run(results: list[dict]) -> dict:
    """The first run's outcome, with median wall times (outcomes are deterministic)."""
    merged = dict(results[0])
    for key in ("wall", "verdict_wall"):
        if key in merged:
            merged[key] = float(np.median([r[key] for r in results]))
    for key in ("loss_times", "grad_times"):  # pooled over the runs
        if key in merged:
            merged[key] = [t for r in results for t in r[key]]
    assert all(r["verdict"] == merged["verdict"] and r["evals"] == merged["evals"] for r in results)
    return merged


def user_times(row: dict) -> None:
    """Median loss and grad call inside gradprobe's verdicts (both gradients, all runs), and
    gradprobe's own time per verdict evaluation beside them, in ms."""
    g, w = row["gp_correct"], row["gp_wrong"]
    loss_ms = 1e3 * float(np.median(g["loss_times"] + w["loss_times"]))
    grads = g["grad_times"] + w["grad_times"]
    grad_ms = 1e3 * float(np.median(grads)) if grads else 0.0
    row["verdict_loss_ms"], row["verdict_grad_ms"] = loss_ms, grad_ms
    row["overhead_ms"] = [
        (1e3 * r["verdict_wall"] - r["verdict_evals"] * loss_ms - r["verdict_grads"] * grad_ms) / r["verdict_evals"]
        if r["verdict_evals"] else math.nan
        for r in (g, w)
    ]


def median_loss_time(model, params, repeats: int = 9) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.loss(params)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# -- the table ----------------------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_evals(count: float) -> str:
    return f"{count:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(WIDTHS), help="hidden widths")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md section")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even when installed")
    parser.add_argument("--repeats", type=int, default=5, help="runs of the quick checks (medians reported)")
    parser.add_argument(
        "--threads", type=int, nargs="+", metavar="K",
        help="torch thread counts to run the quick checks at, 0 for all (os.cpu_count()); default: torch's own",
    )  # fmt: skip
    args = parser.parse_args()
    REPEATS[0] = args.repeats
    try:
        if args.no_torch:
            raise ImportError
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        model = TorchModel(torch)
    except ImportError:
        torch, model = None, NumpyModel()
    if torch is None:
        threads = [None]
    else:
        threads = [k or os.cpu_count() for k in args.threads] if args.threads else [torch.get_num_threads()]
        threads = list(dict.fromkeys(threads))  # "2 0" on two cores: once
    rows = []
    for hidden in args.sizes:
        params = make_params(hidden)
        n = sum(v.size for v in params.values())
        for i, k in enumerate(threads):
            if k is not None:
                torch.set_num_threads(k)
            # Warm-up (imports, BLAS and torch threads) outside the timings.
            model.loss(params)
            model.grad(True)(params)
            row = {"hidden": hidden, "n": n, "threads": k, "first": i == 0}
            # The quick checks run `repeats` times, interleaved, and report medians: on a shared
            # machine one run of either tool can be several times slower than the next.
            runs: dict[str, list[dict]] = {}
            for _ in range(args.repeats):
                for planted in (False, True):
                    key = "wrong" if planted else "correct"
                    runs.setdefault(f"gp_{key}", []).append(run_gradprobe(model, params, planted=planted))
                    if torch is not None:
                        runs.setdefault(f"fast_{key}", []).append(run_torch(torch, model, params, planted, True, n))
            for key, results in runs.items():
                row[key] = median_run(results)
            row["loss_ms"] = 1e3 * median_loss_time(model, params)
            user_times(row)
            if i == 0:  # the long checks and the memory: once per size, at the first thread count
                once = {"full": run_full(model, params, planted=True, n=n)}
                if torch is not None:
                    once["slow_wrong"] = run_torch(torch, model, params, planted=True, fast=False, n=n)
                once["bytes_per_param"] = peak_bytes_per_parameter(model, params, n)
            row.update(once)
            rows.append(row)
            print(summary_line(row), file=sys.stderr, flush=True)
    print(markdown(rows, torch, threads) if args.markdown else "\n".join(summary_line(r) for r in rows))


def summary_line(row: dict) -> str:
    g, w, f = row["gp_correct"], row["gp_wrong"], row["full"]
    parts = [
        f"n={row['n']:>9,}" + (f" threads={row['threads']}" if row["threads"] is not None else ""),
        f"gradprobe correct: {g['verdict']} {g['evals']} evals {fmt_time(g['wall'])} (verdict {fmt_time(g['verdict_wall'])})",
        f"wrong: {w['verdict']} named={w['named']} {w['evals']} evals {fmt_time(w['wall'])} (verdict {fmt_time(w['verdict_wall'])})",
        f"loss {row['verdict_loss_ms']:.3f} ms/call, grad {row['verdict_grad_ms']:.3f} ms/call, "
        f"overhead {row['overhead_ms'][0]:.3f}, {row['overhead_ms'][1]:.3f} ms/eval",
        f"full: {fmt_evals(f['evals'])} evals {fmt_time(f['wall'])}{' (extrap.)' if f['extrapolated'] else ''}",
    ]
    if "fast_wrong" in row:
        parts.append(
            f"torch fast: correct {row['fast_correct']['verdict']} {fmt_time(row['fast_correct']['wall'])}, "
            f"wrong {row['fast_wrong']['verdict']} {fmt_time(row['fast_wrong']['wall'])}; "
            f"slow {fmt_time(row['slow_wrong']['wall'])}{' (extrap.)' if row['slow_wrong']['extrapolated'] else ''}"
        )
    parts.append(f"peak {row['bytes_per_param']:.0f} B/param")
    return " | ".join(parts)


def markdown(rows: list[dict], torch, threads: list) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        "## Scale",
        "",
        f"Command: `{' '.join(sys.argv[:1] and ['python', 'benchmarks/scale.py', *sys.argv[1:]])}` ({datetime.now(timezone.utc).date()}, "
        f"{platform.system()} {cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
        + (f", torch {torch.__version__} on {', '.join(map(str, threads))} threads" if torch is not None else ", torch not installed")
        + f", OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}).",
        "",
        "MLP 32 → h → h → 8 (tanh, batch 64, float64); the wrong gradient doubles the single element "
        f"`{WRONG_TENSOR}{list(WRONG_INDEX)}`. Both tools evaluate the same "
        + ("torch model." if torch is not None else "numpy model."),
        "",
        f"Wall times of the quick checks (gradprobe auto, torch fast) are medians of {REPEATS[0]} interleaved runs; "
        "\"verdict\" is gradprobe's time until its pass/fail verdict, before localization names the element.",
        "",
        "| params | torch threads | check | gradient | evaluations | wall time | verdict | wrong index named |",
        "|---:|---:|---|---|---:|---:|---|---|",
    ]
    for row in rows:
        n = f"{row['n']:,} | {row['threads'] or '–'}"
        g, w, f = row["gp_correct"], row["gp_wrong"], row["full"]
        lines.append(f"| {n} | gradprobe auto ({g['strategy']}) | correct | {g['evals']} | {fmt_time(g['wall'])} (verdict {fmt_time(g['verdict_wall'])}) | {g['verdict']} | – |")
        lines.append(f"| {n} | gradprobe auto ({w['strategy']}) | 1 wrong | {w['evals']} | {fmt_time(w['wall'])} (verdict {fmt_time(w['verdict_wall'])}) | {w['verdict']} | {'yes' if w['named'] else 'no'} |")
        extra = f" (extrap. from {f['subset']:,} coordinates)" if f["extrapolated"] else ""
        if row["first"]:
            lines.append(f"| {n} | full coordinates (gradprobe) | 1 wrong | {fmt_evals(f['evals'])}{extra} | {fmt_time(f['wall'])}{' (extrap.)' if f['extrapolated'] else ''} | {f['verdict']} | {'yes' if f['named'] else 'no'} |")
        if "fast_wrong" in row:
            fc, fw, sw = row["fast_correct"], row["fast_wrong"], row["slow_wrong"]
            lines.append(f"| {n} | torch gradcheck fast | correct | {fc['evals']} | {fmt_time(fc['wall'])} | {fc['verdict']} | – |")
            lines.append(f"| {n} | torch gradcheck fast | 1 wrong | {fw['evals']} | {fmt_time(fw['wall'])} | {fw['verdict']} | no |")
            extra = f" (extrap. from {sw['subset']} elements)" if sw["extrapolated"] else ""
            if row["first"]:
                lines.append(f"| {n} | torch gradcheck slow | 1 wrong | {fmt_evals(sw['evals'])}{extra} | {fmt_time(sw['wall'])}{' (extrap.)' if sw['extrapolated'] else ''} | {sw['verdict']} | no (prints both Jacobians) |")
    lines += [
        "",
        "Ratios, overhead and memory. \"one loss call\": median of 9 plain calls outside gradprobe; \"loss ms/call\", "
        "\"grad ms/call\": medians of the user's calls made during gradprobe's verdicts (both gradients, all runs); "
        "\"gradprobe overhead ms/eval\": (verdict wall time - verdict evaluations x loss ms/call - grad calls x grad ms/call) "
        "/ verdict evaluations. Full check and memory: measured once per size, at the first thread count.",
        "",
        "| params | torch threads | one loss call | loss ms/call | grad ms/call | gradprobe overhead ms/eval (correct, wrong) "
        "| gradprobe evals / full evals | gradprobe verdict time / torch fast (correct, wrong) | gradprobe peak bytes per parameter |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        w, f = row["gp_wrong"], row["full"]
        ratio = f"1/{f['evals'] / w['evals']:,.0f}"
        if "fast_wrong" in row:
            speed = f"{row['gp_correct']['verdict_wall'] / row['fast_correct']['wall']:.2f}x, {w['verdict_wall'] / row['fast_wrong']['wall']:.2f}x"
        else:
            speed = "–"
        user = f"{row['verdict_loss_ms']:.3f} | {row['verdict_grad_ms']:.3f} | {row['overhead_ms'][0]:.3f}, {row['overhead_ms'][1]:.3f}"
        lines.append(f"| {row['n']:,} | {row['threads'] or '–'} | {row['loss_ms']:.2f} ms | {user} | {ratio} | {speed} | {row['bytes_per_param']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
