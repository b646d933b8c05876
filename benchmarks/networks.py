"""Networks benchmark: gradprobe on standard PyTorch networks, correct and with a planted bug.

Run:  python benchmarks/networks.py [--seeds 10] [--nets cnn lstm] [--dtypes float32 float64]
                                    [--markdown] [--full] [--write benchmarks/RESULTS.md]

Networks (each small enough for a check of about 0.1 to 2 s; some below 1000 parameters, where
gradprobe's default strategy is "full", some above, where it is "directional"):

* ``cnn``: Conv2d + ReLU + MaxPool2d, then the planted linear layer, ReLU, a linear head;
  cross-entropy.
* ``mlp_relu``: Linear, ReLU, the planted layer, ReLU, Linear; cross-entropy.
* ``mlp_gelu``: the same with GELU and wider, mean squared error.
* ``transformer``: the planted layer as input embedding, one ``nn.TransformerEncoderLayer``
  (LayerNorm and self-attention, ``dropout=0``, ``batch_first=True``), mean over the sequence, a
  linear head; cross-entropy. The module is in eval mode.
* ``lstm`` / ``gru``: the planted layer as input projection, one ``nn.LSTM`` / ``nn.GRU``
  (``batch_first``), a linear head on the last step; cross-entropy / mean squared error.
* ``numpy_mlp``: two hidden ReLU layers, softmax cross-entropy, hand-written backprop, checked by
  ``gp.check(loss, grad, params)``.
* ``cnn_bn``: Conv2d (with its bias) + BatchNorm2d + ReLU + MaxPool2d on 32 images of 3 x 16 x
  16, then the planted layer, ReLU, a linear head; cross-entropy; in train mode, so that the
  convolution's bias has an exact gradient of zero and float32's is rounding residue.

Variants of every torch net, with the same weights and batch per seed:

* ``autograd``: the planted layer is a plain ``nn.Linear`` (correct);
* ``custom r=0``: the planted layer is a custom ``torch.autograd.Function`` (y = x W^T + b) whose
  backward is correct;
* ``bug 1e-1`` / ``bug 1e-2``: the same Function, its weight gradient multiplied by (1 + r): a
  gradient error of relative size r on that tensor (``planted.weight``), which must be blamed.

The numpy MLP has ``correct`` and ``bug`` variants (dW2 multiplied by 1 + r; ``W2`` must be blamed).

Every check is ``gp.torch.check_module(model, loss_fn, X, y)`` (or ``gp.check``) with gradprobe's
defaults, model and batch in the dtype under test (for float32 that means gradprobe's float64
reference: the numerical side evaluates a float64 copy; ``--native`` passes ``shadow=False`` to
difference the float32 loss itself). For every correct net the float32 autograd
gradient is compared with the float64 one (same float32-rounded weights and batch, evaluated in
float64): the largest over tensors of max|g32 - g64| / max|g64|, printed with any false FAIL (the
issue counts false FAILs "where the function and autograd agree, agreement verified in float64").
For the numpy net, the hand-written float64 gradient is verified against torch autograd in float64
and the float32 one is compared with it the same way.

Per row (net x dtype x variant): checks, PASS/FAIL/INCONCLUSIVE, false FAILs (FAIL on a correct
net), bugs caught with the right tensor blamed (FAIL and the failing tensors are exactly the planted
one), median wall time and loss evaluations. Every false FAIL, every inconclusive check of a correct
net and every missed or misblamed bug gets a one-line detail on stderr (``--full``: also the report).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gradprobe as gp  # noqa: E402
from _results import markdown, write_section  # noqa: E402

torch.set_num_threads(1)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BUG_SIZES = (1e-1, 1e-2)
PLANTED = "planted.weight"


# -- the planted layer -----------------------------------------------------------------------------


class PlantedLinearFunction(torch.autograd.Function):
    """y = x W^T + b with a hand-written backward whose weight gradient is (1 + r) times the right one."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, W, b, r):
        return x @ W.T + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, _, r = inputs
        ctx.save_for_backward(x, W)
        ctx.r = r

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        gW = g2.T @ x2
        if ctx.r:
            gW = gW * (1 + ctx.r)
        return g @ W, gW, g2.sum(0), None


class PlantedLinear(nn.Module):
    """A drop-in for an `nn.Linear` (same weights) that goes through `PlantedLinearFunction`."""

    def __init__(self, linear: nn.Linear, r: float):
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = nn.Parameter(linear.bias.detach().clone())
        self.r = r

    def forward(self, x):
        return PlantedLinearFunction.apply(x, self.weight, self.bias, self.r)


# -- the torch networks (each has a `planted` nn.Linear) -------------------------------------------


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.planted = nn.Linear(36, 12)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.planted(h)))


class CNNBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.planted = nn.Linear(8 * 8 * 8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = self.pool(torch.relu(self.norm(self.conv(x)))).flatten(1)
        return self.head(torch.relu(self.planted(h)))


class MLP(nn.Module):
    def __init__(self, d_in, hidden, d_out, activation):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.planted = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, d_out)
        self.act = activation

    def forward(self, x):
        return self.out(self.act(self.planted(self.act(self.inp(x)))))


class Transformer(nn.Module):
    def __init__(self, d_in=6, d_model=16, classes=4):
        super().__init__()
        self.planted = nn.Linear(d_in, d_model)
        self.block = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.block(self.planted(x)).mean(1))


class Recurrent(nn.Module):
    def __init__(self, cell, d_in, d_proj, hidden, d_out):
        super().__init__()
        self.planted = nn.Linear(d_in, d_proj)
        self.rnn = cell(d_proj, hidden, batch_first=True)
        self.head = nn.Linear(hidden, d_out)

    def forward(self, x):
        out, _ = self.rnn(self.planted(x))
        return self.head(out[:, -1])


@dataclass
class TorchNet:
    name: str
    make: object  # () -> nn.Module, in float64
    batch: object  # (generator) -> (X, y), X in float64
    loss: object  # the loss_fn
    train: bool = False  # checked in train mode (batch norm on the batch's statistics)


def _classes(k, shape):
    return lambda g: (
        torch.randn(*shape, generator=g, dtype=torch.float64),
        torch.randint(0, k, shape[:1], generator=g),
    )


def _regression(shape, d_out):
    return lambda g: (
        torch.randn(*shape, generator=g, dtype=torch.float64),
        torch.randn(shape[0], d_out, generator=g, dtype=torch.float64),
    )


TORCH_NETS = {
    n.name: n
    for n in [
        TorchNet("cnn", CNN, _classes(4, (16, 1, 8, 8)), nn.CrossEntropyLoss()),
        TorchNet("mlp_relu", lambda: MLP(10, 20, 5, nn.ReLU()), _classes(5, (16, 10)), nn.CrossEntropyLoss()),
        TorchNet("mlp_gelu", lambda: MLP(16, 32, 8, nn.GELU()), _regression((16, 16), 8), nn.MSELoss()),
        TorchNet("transformer", Transformer, _classes(4, (8, 5, 6)), nn.CrossEntropyLoss()),
        TorchNet("lstm", lambda: Recurrent(nn.LSTM, 4, 6, 10, 3), _classes(3, (8, 6, 4)), nn.CrossEntropyLoss()),
        TorchNet("gru", lambda: Recurrent(nn.GRU, 4, 6, 16, 2), _regression((8, 6, 4), 2), nn.MSELoss()),
        TorchNet("cnn_bn", CNNBatchNorm, _classes(4, (32, 3, 16, 16)), nn.CrossEntropyLoss(), train=True),
    ]
}
# Each net's seeds follow from its place here (`net_seed`): a new net goes last.
NETS = ["cnn", "mlp_relu", "mlp_gelu", "transformer", "lstm", "gru", "numpy_mlp", "cnn_bn"]
TORCH_VARIANTS = [("autograd", None), ("custom r=0", 0.0), *[(f"bug {r:.0e}", r) for r in BUG_SIZES]]
NUMPY_VARIANTS = [("correct", 0.0), *[(f"bug {r:.0e}", r) for r in BUG_SIZES]]


def net_seed(net: str, seed: int) -> int:
    return 1_000 * (NETS.index(net) + 1) + seed


def torch_model(net: TorchNet, seed: int, r: float | None, dtype: torch.dtype):
    """The model of this seed (the same weights for every variant) and its batch, in `dtype`."""
    torch.manual_seed(net_seed(net.name, seed))
    model = net.make().to(torch.float64)
    if r is not None:
        model.planted = PlantedLinear(model.planted, r)
    model = model.to(dtype).train(net.train)
    g = torch.Generator().manual_seed(net_seed(net.name, seed) + 500)
    X, y = net.batch(g)
    X = X.to(dtype)
    if y.is_floating_point():
        y = y.to(dtype)
    return model, X, y


def autograd_gradient(model, loss_fn, X, y) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    loss = loss_fn(model(X), y)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


def relative_differences(g: dict, reference: dict) -> dict[str, float]:
    """max|g - ref| / max|ref| per tensor, in float64; for a tensor whose reference is below a
    millionth of the whole gradient's largest element (a bias before a batch norm, exactly zero),
    over that largest element instead."""
    refs = {k: torch.as_tensor(ref).to(torch.float64) for k, ref in reference.items()}
    largest = max(float(ref.abs().max()) for ref in refs.values())
    out = {}
    for k, ref in refs.items():
        diff = (torch.as_tensor(g[k]).to(torch.float64) - ref).abs().max()
        own = float(ref.abs().max())
        out[k] = float(diff / max(own if own >= 1e-6 * largest else largest, 1e-300))
    return out


def torch_agreement(net: TorchNet, seed: int, r: float | None) -> dict[str, float]:
    """float32 autograd gradient against float64 on the same float32-rounded weights and batch."""
    model32, X32, y32 = torch_model(net, seed, r, torch.float32)
    model64 = copy.deepcopy(model32).to(torch.float64)
    X64, y64 = X32.to(torch.float64), (y32.to(torch.float64) if y32.is_floating_point() else y32)
    g32 = autograd_gradient(model32, net.loss, X32, y32)
    return relative_differences(g32, autograd_gradient(model64, net.loss, X64, y64))


# -- the numpy network ----------------------------------------------------------------------------

NP_SIZES = (10, 16, 16, 4)
NP_BATCH = 16


def numpy_problem(seed: int, r: float, dtype):
    rng = np.random.default_rng(net_seed("numpy_mlp", seed))
    params = {}
    for i, (a, b) in enumerate(zip(NP_SIZES[:-1], NP_SIZES[1:]), 1):
        params[f"W{i}"] = (rng.standard_normal((b, a)) * np.sqrt(2.0 / a)).astype(dtype)
        params[f"b{i}"] = (0.1 * rng.standard_normal(b)).astype(dtype)
    X = rng.standard_normal((NP_BATCH, NP_SIZES[0])).astype(dtype)
    y = rng.integers(0, NP_SIZES[-1], NP_BATCH)
    onehot = np.eye(NP_SIZES[-1], dtype=dtype)[y]

    def forward(p):
        z1 = X @ p["W1"].T + p["b1"]
        a1 = np.maximum(z1, 0)
        z2 = a1 @ p["W2"].T + p["b2"]
        a2 = np.maximum(z2, 0)
        z3 = a2 @ p["W3"].T + p["b3"]
        z = z3 - z3.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(s)[:, 0] - (z * onehot).sum(axis=1))
        return loss, (z1, a1, z2, a2, e / s)

    def loss(p):
        return forward(p)[0]

    def grad(p):
        _, (z1, a1, z2, a2, probs) = forward(p)
        dz3 = (probs - onehot) / X.shape[0]
        da2 = dz3 @ p["W3"]
        dz2 = da2 * (z2 > 0)
        da1 = dz2 @ p["W2"]
        dz1 = da1 * (z1 > 0)
        dW2 = dz2.T @ a1
        if r:
            dW2 = dW2 * dtype(1 + r)
        return {
            "W1": dz1.T @ X, "b1": dz1.sum(0), "W2": dW2, "b2": dz2.sum(0), "W3": dz3.T @ a2, "b3": dz3.sum(0),
        }  # fmt: skip

    return loss, grad, params, (X, y)


def numpy_autograd_float64(params, X, y) -> dict[str, torch.Tensor]:
    """torch autograd of the numpy MLP's loss, in float64, at `params` (float32 ones cast up)."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    h = torch.as_tensor(X, dtype=torch.float64)
    h = torch.relu(h @ t["W1"].T + t["b1"])
    h = torch.relu(h @ t["W2"].T + t["b2"])
    loss = nn.functional.cross_entropy(h @ t["W3"].T + t["b3"], torch.as_tensor(y))
    return dict(zip(t, torch.autograd.grad(loss, list(t.values()))))


def numpy_agreement(seed: int) -> dict[str, float]:
    """Hand-written float32 gradient against torch autograd in float64 (same float32 point)."""
    _, grad32, params32, (X32, y) = numpy_problem(seed, 0.0, np.float32)
    reference = numpy_autograd_float64(params32, X32, y)
    # The hand-written backward itself, in float64, against autograd in float64: must agree to rounding.
    _, grad64, params64, (X64, _) = numpy_problem(seed, 0.0, np.float64)
    check64 = relative_differences(grad64(params64), numpy_autograd_float64(params64, X64, y))
    assert max(check64.values()) < 1e-10, f"the numpy MLP's hand-written backward is wrong: {check64}"
    return relative_differences(grad32(params32), reference)


# -- running ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    net: str
    dtype: str
    variant: str
    seed: int
    r: float | None  # the planted error's relative size; None or 0 for a correct net
    status: str
    failing: tuple[str, ...] = ()
    strategy: str = ""
    nfev: int = 0
    seconds: float = 0.0
    report: object = None
    error: str | None = None
    agreement: dict[str, float] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return not self.r

    @property
    def blamed_right(self) -> bool:
        target = "W2" if self.net == "numpy_mlp" else PLANTED
        return self.status == "fail" and set(self.failing) == {target}


def run_check(fn) -> tuple[object, float, str | None]:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = fn()
        return report, time.perf_counter() - start, None
    except Exception:  # noqa: BLE001 -- a crash is a result to report
        return None, time.perf_counter() - start, traceback.format_exc()


def outcome_of(net, dtype, variant, seed, r, report, seconds, error) -> Outcome:
    if report is None:
        return Outcome(net, dtype, variant, seed, r, "error", seconds=seconds, error=error)
    return Outcome(
        net, dtype, variant, seed, r, report.status, tuple(report.failing), report.strategy, report.nfev, seconds,
        report,
    )


def run_net(net: str, dtypes, seeds, options: dict) -> tuple[list[Outcome], int]:
    outcomes, n_params = [], 0
    for seed in seeds:
        if net == "numpy_mlp":
            agreement = numpy_agreement(seed)
            for dtype in dtypes:
                for variant, r in NUMPY_VARIANTS:
                    loss, grad, params, _ = numpy_problem(seed, r, np.dtype(dtype).type)
                    n_params = sum(v.size for v in params.values())
                    result = run_check(lambda: gp.check(loss, grad, params, **options))
                    o = outcome_of(net, dtype, variant, seed, r, *result)
                    o.agreement = agreement if not r else {}
                    outcomes.append(o)
            continue
        spec = TORCH_NETS[net]
        agreements = {r: torch_agreement(spec, seed, r) for _, r in TORCH_VARIANTS if not r}
        for dtype in dtypes:
            for variant, r in TORCH_VARIANTS:
                model, X, y = torch_model(spec, seed, r, DTYPES[dtype])
                n_params = sum(p.numel() for p in model.parameters())
                result = run_check(lambda: gp.torch.check_module(model, spec.loss, X, y, **options))
                o = outcome_of(net, dtype, variant, seed, r, *result)
                o.agreement = agreements.get(r, {}) if not r else {}
                outcomes.append(o)
    return outcomes, n_params


# -- reporting -------------------------------------------------------------------------------------


def is_anomaly(o: Outcome) -> bool:
    if o.status == "error":
        return True
    if o.correct:
        return o.status != "pass"
    return not o.blamed_right


def detail(o: Outcome) -> str:
    kind = (
        "ERROR" if o.status == "error"
        else "FALSE FAIL" if o.correct and o.status == "fail"
        else "INCONCLUSIVE (correct net)" if o.correct
        else "MISSED BUG" if o.status != "fail"
        else "MISBLAMED BUG"
    )  # fmt: skip
    head = f"{kind}: {o.net} {o.dtype} {o.variant} seed {o.seed}: {o.status}"
    if o.status == "error":
        return head + " | " + (o.error or "").strip().splitlines()[-1]
    rep = o.report
    head += (
        f" [strategy {o.strategy}, nfev {o.nfev}, {o.seconds:.2f} s, reference {rep.reference}, "
        f"resolution {rep.resolution:.1e}]"
    )
    tensors = []
    for name, t in rep.tensors.items():
        planted = name in (PLANTED, "W2") and not o.correct
        if t.status == "pass" and not planted:
            continue
        text = f"{name}{'*' if planted else ''}={t.status}"
        if t.reason:
            text += f"/{t.reason}"
        if t.diagnosis:
            text += f" '{t.diagnosis}'"
        text += f" diff {t.difference:.1e} res {t.resolution:.1e}"
        if t.worst:
            w = t.worst[0]
            text += f" worst {tuple(w.index)}: a {w.analytic:.6e} n {w.numeric:.6e}"
            if hasattr(w, "error_bar"):
                text += f" ± {w.error_bar:.1e}"
        tensors.append(text)
    head += " | " + ("; ".join(tensors) if tensors else "all tensors pass")
    if o.agreement:
        worst = max(o.agreement, key=o.agreement.get)
        label = "hand f32 vs autograd f64" if o.net == "numpy_mlp" else "autograd f32 vs f64"
        head += f" | {label}: max {o.agreement[worst]:.1e} ({worst})"
    if rep.notes:
        head += " | notes: " + " / ".join(n[:160] for n in rep.notes)
    return head


def summarize(outcomes: list[Outcome], n_params: int) -> dict[str, str]:
    o0 = outcomes[0]
    n = len(outcomes)
    count = {s: sum(o.status == s for o in outcomes) for s in ("pass", "fail", "inconclusive", "error")}
    strategies = sorted({o.strategy for o in outcomes if o.strategy})
    row = {
        "net": o0.net,
        "params": str(n_params),
        "strategy": "/".join(strategies),
        "dtype": o0.dtype,
        "variant": o0.variant,
        "checks": str(n),
        "pass / fail / inconcl.": f"{count['pass']} / {count['fail']} / {count['inconclusive']}"
        + (f" ({count['error']} errors)" if count["error"] else ""),
    }
    if o0.correct:
        row["false FAILs"] = str(count["fail"])
        row["caught, right blame"] = ""
    else:
        row["false FAILs"] = ""
        row["caught, right blame"] = f"{sum(o.blamed_right for o in outcomes)} / {n}"
    timed = [o for o in outcomes if o.status != "error"]
    row["median s"] = f"{statistics.median(o.seconds for o in timed):.2f}" if timed else ""
    row["median nfev"] = f"{statistics.median(o.nfev for o in timed):.0f}" if timed else ""
    agree = [max(o.agreement.values()) for o in outcomes if o.agreement]
    row["f32 vs f64 grad (max)"] = f"{max(agree):.1e}" if agree and o0.dtype == "float32" else ""
    return row


def totals(outcomes: list[Outcome]) -> list[str]:
    correct = [o for o in outcomes if o.correct]
    false_fails = sum(o.status == "fail" for o in correct)
    inconclusive = sum(o.status == "inconclusive" for o in correct)
    errors = sum(o.status == "error" for o in outcomes)
    lines = [
        f"- False FAILs on correct nets: {false_fails} / {len(correct)} (target 0).",
        f"- Inconclusive on correct nets: {inconclusive} / {len(correct)} "
        f"({100 * inconclusive / max(len(correct), 1):.1f}%; target at most 5%).",
    ]
    for r in BUG_SIZES:
        bugs = [o for o in outcomes if o.r == r]
        caught = sum(o.status == "fail" for o in bugs)
        lines.append(
            f"- Bugs of relative size {r:.0e}: caught {caught} / {len(bugs)}, with the right tensor blamed "
            f"{sum(o.blamed_right for o in bugs)} / {len(bugs)} (target all)."
        )
    if errors:
        lines.append(f"- Checks that raised: {errors}.")
    timed = [o for o in outcomes if o.status != "error"]
    lines.append(
        f"- {len(outcomes)} checks, {sum(o.seconds for o in timed):.0f} s of checking, "
        f"{sum(o.nfev for o in timed)} loss evaluations."
    )
    return lines


def plain(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per (net, dtype, variant); default 10")
    parser.add_argument("--seed-list", type=int, nargs="+", help="run exactly these seeds (to reproduce one)")
    parser.add_argument("--nets", nargs="+", choices=NETS, default=NETS)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["float32", "float64"])
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--full", action="store_true", help="also print the full report of every anomaly (stderr)")
    parser.add_argument(
        "--native",
        action="store_true",
        help="shadow=False: evaluate float32 losses in float32 (default: gradprobe's float64 reference)",
    )
    parser.add_argument("--write", type=Path, help="replace (or append) the '## Networks' section of this file")
    args = parser.parse_args(argv)
    seeds = args.seed_list or list(range(args.seeds))

    start = time.perf_counter()
    rows, everything, anomalies = [], [], []
    for net in args.nets:
        net_start = time.perf_counter()
        outcomes, n_params = run_net(net, args.dtypes, seeds, {"shadow": False} if args.native else {})
        everything += outcomes
        variants = [v for v, _ in (NUMPY_VARIANTS if net == "numpy_mlp" else TORCH_VARIANTS)]
        for dtype in args.dtypes:
            for variant in variants:
                group = [o for o in outcomes if o.dtype == dtype and o.variant == variant]
                rows.append(summarize(group, n_params))
        for o in outcomes:
            if is_anomaly(o):
                anomalies.append(o)
                print(detail(o), file=sys.stderr, flush=True)
                if args.full:
                    print(o.error if o.report is None else str(o.report), file=sys.stderr, flush=True)
        seconds = time.perf_counter() - net_start
        print(f"[{net}: {len(outcomes)} checks in {seconds:.0f} s]", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start

    table = markdown(rows) if args.markdown else plain(rows)
    summary = totals(everything) + [f"- Total wall time {elapsed:.0f} s."]
    print(table)
    print()
    print("\n".join(summary))

    if args.write:
        command = "python benchmarks/networks.py " + " ".join(argv if argv is not None else sys.argv[1:])
        section = [
            "## Networks",
            "",
            f"Command: `{command.strip()}`",
            f"Machine: {platform.platform()}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
            f"numpy {np.__version__}, torch {torch.__version__} (1 thread). Date: {datetime.date.today().isoformat()}.",
            "",
            f"Standard networks (`benchmarks/networks.py`), {len(seeds)} seeds per row, gradprobe's "
            + ("options `shadow=False` " if args.native else "defaults ")
            + "(`gp.torch.check_module(model, loss_fn, X, y)`; the numpy MLP `gp.check(loss, grad, params)`). "
            "Correct variants: `autograd` (the planted layer is an `nn.Linear`), `custom r=0` (a custom "
            "`autograd.Function` with a correct backward), `correct` (numpy, hand-written backprop). "
            f"Buggy variants: the planted layer's weight gradient times (1 + r); *right blame* means FAIL with "
            f"exactly that tensor (`{PLANTED}`, numpy `W2`) failing. *f32 vs f64 grad*: the largest "
            "max|g32 - g64| / max|g64| over tensors and seeds of the correct net's float32 gradient against "
            "float64 (autograd; numpy: hand-written float32 against float64 autograd); for a tensor whose "
            "float64 gradient is below a millionth of the whole gradient's largest element (`cnn_bn`'s "
            "convolution bias, exactly zero), over that largest element.",
            "",
            markdown(rows),
            "",
            *summary,
        ]
        if anomalies:
            section += ["", "Checks that were not a clean verdict:", "", *[f"- {detail(o)}" for o in anomalies]]
        write_section(args.write, "## Networks", "\n".join(section) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
