"""PyTorch operator set: gradprobe and torch.autograd.gradcheck on every differentiable OpInfo in op_db.

Run:  python benchmarks/opinfo.py [--samples 3] [--dtypes float64 float32] [--ops abs,atan2]
                                  [--limit N] [--jobs 2] [--timeout 60] [--memory 6] [--bugs 1e-2 1e-1]
                                  [--findings /tmp/opinfo/findings.md] [--raw /tmp/opinfo/outcomes.json]
                                  [--write benchmarks/RESULTS.md]

What runs, per OpInfo with ``supports_autograd`` and per dtype it supports in backward:

* ``op.sample_inputs("cpu", dtype, requires_grad=True)`` in its order (torch seeded with 0 before each
  op's samples, so sample k is reproducible on its own), up to the ``--samples``-th one with a
  non-empty real input; the empty and complex ones drawn on the way are run or skipped too.
* The function differentiated is the one PyTorch's own gradient test (``TestGradients._check_helper``
  in ``torch.testing._internal.common_utils``) builds: its arguments are the sample's tensors that
  require grad (``sample.input``, or its tensors when it is a list, then ``sample.args`` and
  ``sample.kwargs``), and it returns ``op.gradcheck_wrapper(op.get_op(), ...)`` passed through
  ``sample.output_process_fn_grad``. One change: the output is flattened to its floating-point
  tensors that autograd differentiates (a tuple when there are several), so integer outputs
  (``max``'s indices), outputs autograd marks non-differentiable (``native_layer_norm``'s mean and
  rstd, which gradcheck skips too) and nested structures are left out for both tools alike.
  Samples with a complex input or output are skipped (gradprobe does not check complex
  parameters yet) and counted.
* gradprobe: ``gp.torch.check(fn, *inputs)`` with its defaults (seed 0). An ``InvalidArgument`` /
  ``InvalidValue`` raised before any work (gradprobe declining an input it does not support) is
  counted as *refused*; any other exception is a *crash*.
* gradcheck: ``torch.autograd.gradcheck(fn, inputs, raise_exception=False)`` with its defaults, in
  float32 too (where its default tolerances are known to be too tight); an exception is a crash.
* Planted bugs: ``fn`` wrapped in a custom ``autograd.Function`` whose backward returns the true VJP
  (``torch.autograd.grad`` on a re-run of ``fn``) with the first input's gradient times (1 + r),
  r in ``--bugs``. A sample whose first input has an identically zero gradient (its float64
  VJP with a random cotangent is rounding residue, at most 1e-10 of |<v, f>| / rms(x)) or a
  non-finite one has no bug to plant and is left out. Caught means gradprobe FAIL, gradcheck False.
* Every check runs under a SIGALRM time limit (``--timeout`` s) and each worker under an address-space
  cap (``--memory`` GiB); a check cut off by either is over the *limit*.

When gradprobe FAILs a correct op, autograd is checked independently: at the elements gradprobe
names (or along a random direction when it names none), the float64 VJP for a random cotangent is
compared with central differences and Richardson extrapolations of the float64 function at 13
steps. *false FAIL*: some estimate agrees with autograd to 1e-9 of the tensor's gradient scale
(for float32 also: the float32 VJP is within 1e-4 of the float64 one); *autograd wrong*: three
successive estimates agree with each other and not with autograd (PyTorch's doing, by design or
not: not a gradprobe mistake);
*float32 imprecise*: right in float64, but the float32 VJP is further than 1e-4 from it; otherwise
*unverified*. Where the float64 copy is not the same function as the float32 op (its output differs
by more than 1e-3: an underflow, random numbers drawn in the input's dtype), the float32 op itself
is differenced instead, to 1e-3, and the verdict says so.

Output: per dtype a table (samples, skips and why, each tool's verdicts, planted bugs caught,
median seconds per check); ``--findings`` gets every gradprobe crash, check over the limits,
refusal, FAIL and inconclusive verdict on a correct op, and every planted bug it missed, each with
the report or traceback and a standalone repro snippet; ``--raw`` every outcome as JSON;
``--write`` replaces the "## PyTorch operator set" section of the results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import multiprocessing
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_utils import is_iterable_of_tensors
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gradprobe as gp  # noqa: E402
from _results import write_section  # noqa: E402
from gradprobe import InvalidArgument, InvalidValue  # noqa: E402

torch.set_num_threads(1)

DTYPES = {"float64": torch.float64, "float32": torch.float32}
SECTION = "## PyTorch operator set"
# "limit": cut off by the time limit or out of the memory limit (a resource, not a verdict).
GP_STATUSES = ("pass", "fail", "inconclusive", "crash", "refused", "limit")
GC_STATUSES = ("pass", "fail", "crash", "limit")
# Verification thresholds (see the module docstring).
AGREE_F64 = 1e-9
AGREE_F32 = 1e-4
AGREE_NATIVE = 1e-3  # finite differences of a float32 function
STEPS = 13


class Timeout(BaseException):
    """Raised by the alarm. A BaseException, so that no `except Exception` inside a tool takes it
    for the function refusing an input and carries on."""


def limit_memory(gib: float) -> None:
    """Cap this process's address space: gradcheck's dense Jacobians of a large sample (slice's
    24000 x 21600) would otherwise take the shared machine's memory until the OOM killer steps in;
    with the cap the allocation fails and the check is recorded as over the limit."""
    cap = int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.set_num_threads(1)


def _out_of_memory(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, MemoryError) or "can't allocate memory" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def time_limit(seconds: int):
    def expire(signum, frame):
        raise Timeout(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- the function under test, as test_ops builds it -----------------------------------------------


def _requires_grad(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.requires_grad


def _floating_outputs(out: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())]


@dataclass
class Call:
    """One sample of one op, callable as ``fn(*tensors that require grad)``."""

    op: Any
    input: Any
    args: tuple
    kwargs: dict
    process: Any
    keep: tuple[bool, ...] | None = None  # which floating-point outputs autograd differentiates

    @classmethod
    def of(cls, op, sample) -> Call:
        return cls(op, sample.input, tuple(sample.args), dict(sample.kwargs), sample.output_process_fn_grad)

    def inputs(self) -> tuple[torch.Tensor, ...]:
        """test_ops' gradcheck arguments: only sample.input is expanded when it is a list."""
        first = list(self.input) if is_iterable_of_tensors(self.input) else [self.input]
        return tuple(x for x in (*first, *self.args, *self.kwargs.values()) if _requires_grad(x))

    def _recompose(self, tensors) -> tuple[list, dict]:
        it = iter(tensors)

        def put(x):
            if is_iterable_of_tensors(x):
                return [next(it) if _requires_grad(t) else t for t in x]
            return next(it) if _requires_grad(x) else x

        args = [put(self.input), *(put(a) for a in self.args)]
        return args, {k: put(v) for k, v in self.kwargs.items()}

    def raw(self, *tensors):
        args, kwargs = self._recompose(tensors)
        out = self.op.gradcheck_wrapper(self.op.get_op(), *args, **kwargs)
        return self.process(out) if self.process is not None else out

    def __call__(self, *tensors):
        outs = _floating_outputs(self.raw(*tensors))
        if self.keep is not None:
            outs = [o for o, kept in zip(outs, self.keep) if kept]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def cast(self, dtype: torch.dtype) -> Call:
        """The same sample with every floating-point tensor in `dtype` (new leaves, same flags)."""

        def conv(x):
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                return x.detach().to(dtype).requires_grad_(x.requires_grad)
            if is_iterable_of_tensors(x):
                return [conv(t) for t in x]
            return x

        return Call(self.op, conv(self.input), tuple(conv(a) for a in self.args),
                    {k: conv(v) for k, v in self.kwargs.items()}, self.process, self.keep)


def prepare(call: Call) -> str | None:
    """Why a sample cannot be checked by both tools, or None; then sets `call.keep`.

    Outputs that autograd marks non-differentiable (native_layer_norm's mean and rstd,
    native_batch_norm's saved statistics: their backward ignores any cotangent given to them)
    are left out, as gradcheck leaves them out; found once here, with grad on, because inside
    the tools' evaluations requires_grad says nothing."""
    inputs = call.inputs()
    if not inputs:
        return "no input requires grad"
    if any(x.is_complex() for x in inputs):
        return "complex input"
    try:
        with torch.enable_grad():
            outs = _floating_outputs(call.raw(*inputs))
    except Exception as e:  # noqa: BLE001 -- the op itself refusing its own sample
        return f"op raised ({type(e).__name__})"
    if any(o.is_complex() for o in outs):
        return "complex output"
    call.keep = tuple(o.requires_grad for o in outs)
    if not any(call.keep):
        return "no differentiable output"
    return None


def op_skip_reason(op, dtype: torch.dtype) -> str | None:
    if dtype not in op.supported_backward_dtypes("cpu"):
        return "dtype not supported in backward"
    return None


# -- planted bug ----------------------------------------------------------------------------------


def _as_tuple(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def true_vjp(fn, inputs, cotangents) -> list[torch.Tensor]:
    """Autograd's VJP of fn at `inputs` (zeros where an input is unused), on detached copies."""
    xs = [x.detach().requires_grad_() for x in inputs]
    with torch.enable_grad():
        outs = _as_tuple(fn(*xs))
    pairs = [(o, v) for o, v in zip(outs, cotangents) if o.requires_grad]
    grads = (
        torch.autograd.grad([o for o, _ in pairs], xs, [v for _, v in pairs], allow_unused=True)
        if pairs else [None] * len(xs)
    )
    return [torch.zeros_like(x) if g is None else g for x, g in zip(xs, grads)]


def planted(fn, r: float):
    """fn as a custom Function whose backward is right except the first input's gradient, times (1 + r)."""

    class Planted(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *xs):
            ctx.save_for_backward(*xs)
            outs = tuple(o.clone() for o in _as_tuple(fn(*xs)))  # a Function must not return its inputs
            return outs if len(outs) > 1 else outs[0]

        @staticmethod
        def backward(ctx, *cotangents):
            grads = true_vjp(fn, ctx.saved_tensors, cotangents)
            grads[0] = grads[0] * (1 + r)
            return tuple(grads)

    def buggy(*xs):
        return Planted.apply(*xs)

    return buggy


def random_cotangents(outs, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype) for o in outs]


def float64_twin(call: Call) -> Call:
    return call if call.inputs()[0].dtype == torch.float64 else call.cast(torch.float64)


def planting_skip_reason(call: Call) -> str | None:
    """Why no bug can be planted in the first input's gradient: it is not finite, or identically
    zero (no error to make relative to it): its float64 VJP for a random
    cotangent is at most 1e-10 of the gradient's natural size |<v, f>| / rms(x). Rounding residue
    counts as zero: corrcoef of two observations is constantly +-1, yet autograd returns 1e-17s,
    and 1% of those is no bug."""
    try:
        twin = float64_twin(call)
        inputs = twin.inputs()
        with torch.no_grad():
            outs = _as_tuple(twin(*inputs))
    except Exception:  # noqa: BLE001 -- an op that refuses float64 copies: judge in its own dtype
        twin, inputs = call, call.inputs()
        with torch.no_grad():
            outs = _as_tuple(twin(*inputs))
    vs = random_cotangents(outs)
    g0 = true_vjp(twin, inputs, vs)[0].double()
    size = sum(float((o.double() * v.double()).abs().sum()) for o, v in zip(outs, vs))
    x0 = inputs[0].detach().double()
    rms = max(float(x0.norm()) / max(x0.numel(), 1) ** 0.5, 1e-3)
    if not g0.numel():
        return "first input is empty"
    if not bool(g0.isfinite().all()):
        return "first input's gradient not finite"
    if float(g0.abs().max()) <= 1e-10 * size / rms:
        return "first input's gradient is zero"
    return None


# -- running the tools ----------------------------------------------------------------------------


@dataclass
class Run:
    """One check by one tool."""

    status: str
    seconds: float
    text: str = ""  # the report, or the traceback
    failing: tuple = ()
    worst: dict = field(default_factory=dict)  # failing tensor -> element indices gradprobe named
    reasons: tuple = ()  # why inconclusive, per tensor


def _guarded(fn, timeout: int) -> tuple[Any, float, BaseException | None, str]:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), time_limit(timeout):
            warnings.simplefilter("ignore")
            value = fn()
        return value, time.perf_counter() - start, None, ""
    except (Exception, Timeout) as e:  # noqa: BLE001 -- an exception is a result to record
        seconds, text = time.perf_counter() - start, traceback.format_exc()
        _release(e)
        return None, seconds, e, text


def _release(error: BaseException | None) -> None:
    """Drop the frames an exception holds: a gradcheck cut off by the memory cap leaves its
    half-built Jacobians referenced from them, in cycles only the cyclic collector would free,
    and the next check in the worker would then run out of the address space."""
    while error is not None:
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
    gc.collect()


def run_gradprobe(fn, inputs, timeout: int) -> Run:
    report, seconds, error, tb = _guarded(lambda: gp.torch.check(fn, *inputs, seed=0), timeout)
    if isinstance(error, Timeout) or _out_of_memory(error):
        return Run("limit", seconds, tb)
    if isinstance(error, (InvalidArgument, InvalidValue)):
        return Run("refused", seconds, f"{type(error).__name__}: {error}")
    if error is not None:
        return Run("crash", seconds, tb)
    names = list(report.tensors)
    worst = {
        names.index(n): [tuple(e.index) for e in t.worst[:3]]
        for n, t in report.tensors.items() if t.status == "fail"
    }
    reasons = tuple(f"{n}: {t.reason}" for n, t in report.tensors.items() if t.status == "inconclusive")
    return Run(report.status, seconds, str(report), tuple(report.failing), worst, reasons)


def run_gradcheck(fn, inputs, timeout: int) -> Run:
    ok, seconds, error, tb = _guarded(lambda: torch.autograd.gradcheck(fn, inputs, raise_exception=False), timeout)
    if isinstance(error, Timeout) or _out_of_memory(error):
        return Run("limit", seconds, tb)
    if error is not None:
        return Run("crash", seconds, tb)
    return Run("pass" if ok else "fail", seconds)


# -- is autograd right where gradprobe failed it? -------------------------------------------------


def _estimates(loss, x: torch.Tensor, d: torch.Tensor, scale: float, dtype: torch.dtype) -> list[float]:
    """Central differences of loss along d at steps scale * 4^-k, and their Richardson extrapolations
    (NaN at a step that the input's dtype rounds away: the loss would not move, whatever its slope)."""
    central = []
    for k in range(1, STEPS + 1):
        h = scale * 4.0**-k
        if torch.equal((x + h * d).to(dtype), (x - h * d).to(dtype)):
            central.append(float("nan"))
            continue
        central.append((loss(x + h * d) - loss(x - h * d)) / (2 * h))
    richardson = [(16 * b - a) / 15 for a, b in zip(central, central[1:])]
    return central + richardson


def _judge(estimates: list[float], analytic: float, scale: float, tolerance: float) -> str:
    finite = [e for e in estimates if np.isfinite(e)]
    if any(abs(e - analytic) <= tolerance * scale for e in finite):
        return "right"
    # A plateau: three successive extrapolations that agree far better than with autograd.
    rich = estimates[STEPS:]
    for a, b, c in zip(rich, rich[1:], rich[2:]):
        if all(map(np.isfinite, (a, b, c))):
            spread, off = max(a, b, c) - min(a, b, c), abs((a + b + c) / 3 - analytic)
            if spread < 0.01 * off and off > 10 * tolerance * scale:
                return "wrong"
    return "unclear"


def _directions(run: Run, xs, gen: torch.Generator):
    """(input index, label, direction): the elements gradprobe named, else one random direction."""
    for i, indices in sorted(run.worst.items()):
        for index in indices:
            d = torch.zeros(xs[i].shape, dtype=torch.float64)
            d[index] = 1.0
            yield i, str(index), d
        if not indices:
            yield i, "random direction", torch.randn(xs[i].shape, generator=gen, dtype=torch.float64)


def _same_function(outs, outs64) -> bool:
    """Whether the float64 copy computes the function the op computes in its own dtype (to 1e-3):
    not so for an op that draws random numbers in its input's dtype (fractional max pooling)."""
    for o, o64 in zip(outs, outs64):
        o, o64 = o.double(), o64.double()
        both = o.isfinite() & o64.isfinite()
        if not torch.equal(both, o64.isfinite()) or not torch.equal(o[~both].nan_to_num(), o64[~both].nan_to_num()):
            return False
        if both.any() and float((o - o64)[both].abs().max()) > 1e-3 * float(o64[both].abs().max()):
            return False
    return True


def _seeded(fn, args):
    """fn(*args) with torch's generator seeded, as gradprobe calls it: a random op (normal,
    dropout) is then one function of its inputs, whose draws are held fixed."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return fn(*args)


def _element_verdict(fn, xs, vs, g, i, d, tolerance) -> tuple[str, float, float, float]:
    """Is <g[i], d> the derivative of <v, fn(xs)> along d? Returns (verdict, analytic, nearest, rel)."""
    def loss(xi):
        with torch.no_grad():
            args = list(xs)
            args[i] = xi.to(xs[i].dtype)
            return float(sum((o.double() * v.double()).sum() for o, v in zip(_as_tuple(_seeded(fn, args)), vs)))

    x = xs[i].detach().double()
    analytic = float((g[i].double() * d).sum())
    scale = max(abs(analytic), float(g[i].double().norm()) / max(g[i].numel(), 1) ** 0.5, 1e-300)
    estimates = _estimates(loss, x, d, max(float((x.abs() * d.abs()).max()), 1e-3), xs[i].dtype)
    nearest = min((e for e in estimates if np.isfinite(e)), key=lambda e: abs(e - analytic), default=float("nan"))
    return _judge(estimates, analytic, scale, tolerance), analytic, nearest, abs(nearest - analytic) / scale


def verify_fail(call: Call, run: Run) -> tuple[str, str]:
    """Classify a gradprobe FAIL of a correct op: is autograd right where gradprobe says it is wrong?
    Returns (verdict, details)."""
    xs = call.inputs()
    with torch.no_grad():
        outs = _as_tuple(call(*xs))
    vs = random_cotangents(outs)  # in the outputs' dtypes; the float64 side gets the same values
    g = true_vjp(call, xs, vs)
    twin = float64_twin(call)
    xs64, vs64 = twin.inputs(), [v.double() for v in vs]
    g64 = true_vjp(twin, xs64, vs64)
    with torch.no_grad():
        same = _same_function(_as_tuple(_seeded(call, xs)), _as_tuple(_seeded(twin, xs64)))
    # Difference the float64 copy; where it is another function, the op itself at a looser tolerance.
    fn, at, cot, grads, tolerance = (twin, xs64, vs64, g64, AGREE_F64) if same else (call, xs, vs, g, AGREE_NATIVE)
    details, verdicts = [], []
    for i, label, d in _directions(run, xs, torch.Generator().manual_seed(2)):
        verdict, analytic, nearest, rel = _element_verdict(fn, at, cot, grads, i, d, tolerance)
        deviation = abs(float((g[i].double() * d).sum()) - analytic) / max(abs(analytic), 1e-300)
        if same and verdict == "right" and xs[i].dtype != torch.float64:
            scale = max(abs(analytic), float(g64[i].norm()) / max(g64[i].numel(), 1) ** 0.5, 1e-300)
            deviation = abs(float((g[i].double() * d).sum()) - analytic) / scale
            verdict = "f32 imprecise" if deviation > AGREE_F32 else verdict
        verdicts.append(verdict)
        details.append(
            f"input{i} {label}: autograd {'f64' if same else str(xs[i].dtype)[6:]} {analytic:.12e}, nearest finite "
            f"difference {nearest:.12e} (rel {rel:.1e})"
            + (f", {str(xs[i].dtype)[6:]} VJP off by {deviation:.1e} rel" if same and xs[i].dtype != torch.float64
               else "")
            + f": {verdict}"
        )
    verdict = (
        "autograd wrong" if "wrong" in verdicts
        else "float32 imprecise" if "f32 imprecise" in verdicts
        else "false FAIL" if verdicts and all(v == "right" for v in verdicts)
        else "unverified"
    )  # fmt: skip
    if not same:
        verdict += ", float64 copy is another function"
        details.insert(0, f"the op's float64 copy differs from its {str(xs[0].dtype)[6:]} output by more than 1e-3: "
                          "differenced in its own dtype")
    return verdict, "\n".join(details)


# -- one sample, one op -----------------------------------------------------------------------------


@dataclass
class Outcome:
    op: str
    dtype: str
    index: int
    skipped: str | None = None
    shapes: str = ""
    empty: bool = False  # some input has no elements
    gp: Run | None = None
    gc: Run | None = None
    bugs: dict = field(default_factory=dict)  # r -> (gradprobe Run, gradcheck Run); absent when not planted
    bug_skip: str | None = None
    verdict: str = ""  # for a gradprobe FAIL of the correct op
    verification: str = ""


def _shapes(inputs) -> str:
    return ", ".join(str(tuple(x.shape)) for x in inputs)


def run_sample(op, dtype: torch.dtype, index: int, sample, options) -> Outcome:
    out = Outcome(op_label(op), str(dtype).removeprefix("torch."), index)
    call = Call.of(op, sample)
    out.skipped = prepare(call)
    if out.skipped:
        return out
    inputs = call.inputs()
    out.shapes = _shapes(inputs)
    out.empty = any(x.numel() == 0 for x in inputs)
    out.gp = run_gradprobe(call, inputs, options.timeout)
    out.gc = run_gradcheck(call, inputs, options.timeout)
    if out.gp.status == "fail":
        try:
            out.verdict, out.verification = verify_fail(call, out.gp)
        except Exception:  # noqa: BLE001 -- an op that cannot be re-run in float64
            out.verdict, out.verification = "unverified", traceback.format_exc(limit=3)
    try:
        out.bug_skip = planting_skip_reason(call)
    except Exception as e:  # noqa: BLE001
        out.bug_skip = f"true gradient raised ({type(e).__name__})"
    if out.bug_skip:
        return out
    for r in options.bugs:
        buggy = planted(call, r)
        out.bugs[r] = (run_gradprobe(buggy, inputs, options.timeout), run_gradcheck(buggy, inputs, options.timeout))
    return out


def op_label(op) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def run_op(task) -> tuple[str, str, str | None, list[Outcome], float]:
    """All samples of one op in one dtype (a worker's unit of work)."""
    label, dtype_name, options = task
    op, dtype = OPS[label], DTYPES[dtype_name]
    start = time.perf_counter()
    why = op_skip_reason(op, dtype)
    if why:
        return label, dtype_name, why, [], 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = draw_samples(op, dtype, options.samples)
    except Exception as e:  # noqa: BLE001
        return label, dtype_name, f"sample_inputs raised ({type(e).__name__})", [], 0.0
    outcomes = [run_sample(op, dtype, k, s, options) for k, s in samples]
    return label, dtype_name, None, outcomes, time.perf_counter() - start


def draw_samples(op, dtype: torch.dtype, n: int) -> list[tuple[int, Any]]:
    """Samples in PyTorch's order up to the n-th with a non-empty real input (at most 16n + 16:
    svd's and unfold's first 16 are all empty).

    Many ops' second sample is an empty tensor, which would leave them one real sample; the
    empty and complex ones drawn on the way are kept (they cost nothing and are counted). Only
    the inputs' shapes decide, never a call of the op: some ops reseed torch, and the samples
    must stay those of a plain ``islice`` after ``torch.manual_seed(0)`` (the repro snippets)."""
    torch.manual_seed(0)
    drawn, useful = [], 0
    for k, sample in enumerate(islice(op.sample_inputs("cpu", dtype, requires_grad=True), 16 * n + 16)):
        drawn.append((k, sample))
        inputs = Call.of(op, sample).inputs()
        useful += bool(inputs) and all(x.numel() and not x.is_complex() for x in inputs)
        if useful == n:
            break
    return drawn


OPS = {op_label(op): op for op in op_db if op.supports_autograd}


# -- tables -------------------------------------------------------------------------------------------


def _median(runs) -> str:
    times = [r.seconds for r in runs if r.status not in ("limit", "refused")]
    return f"{statistics.median(times):.3f}" if times else ""


def dtype_table(outcomes: list[Outcome], op_skips: Counter, bugs) -> list[str]:
    """The markdown lines for one dtype."""
    checked = [o for o in outcomes if not o.skipped]
    sample_skips = Counter(o.skipped for o in outcomes if o.skipped)
    planted_ = [o for o in checked if o.bugs]
    bug_skips = Counter(o.bug_skip for o in checked if o.bug_skip)
    gp_fail = Counter(o.verdict for o in checked if o.gp.status == "fail")
    lines = [
        f"{len(checked)} samples checked from {len({o.op for o in outcomes})} ops "
        f"({sum(o.empty for o in checked)} of them with an empty input). "
        f"Skipped ops: {_counts(op_skips) or 'none'}. Skipped samples: {_counts(sample_skips) or 'none'}. "
        f"Planted bugs: {len(planted_)} samples; left out: {_counts(bug_skips) or 'none'}.",
        "",
        "| tool | " + " | ".join([*GP_STATUSES, *(f"bug {r:.0e} caught" for r in bugs)]) + " | median s |",
        "|---|" + "---|" * (len(GP_STATUSES) + len(bugs) + 1),
    ]
    for tool, statuses in (("gp", GP_STATUSES), ("gc", GC_STATUSES)):
        runs = [getattr(o, tool) for o in checked]
        count = Counter(r.status for r in runs)
        cells = [str(count[s]) if s in statuses else "" for s in GP_STATUSES]
        if tool == "gp" and count["fail"]:
            cells[1] += " (" + ", ".join(f"{n} {v}" for v, n in sorted(gp_fail.items())) + ")"
        position = 0 if tool == "gp" else 1
        for r in bugs:
            caught = [o for o in planted_ if o.bugs[r][position].status == "fail"]
            clean = [o for o in caught if getattr(o, tool).status == "pass"]
            cells.append(f"{len(caught)} / {len(planted_)} ({len(clean)} where the correct op passed)")
        name = "gradprobe" if tool == "gp" else "gradcheck"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_median(runs)} |")
    return lines


def _counts(counter: Counter) -> str:
    return ", ".join(f"{n} {why}" for why, n in counter.most_common())


# -- findings ---------------------------------------------------------------------------------------

SNIPPET = '''\
import itertools, torch, gradprobe as gp
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_utils import is_iterable_of_tensors
from torch.utils._pytree import tree_leaves

op = next(o for o in op_db if (o.name, o.variant_test_name) == {key!r})
torch.manual_seed(0)
s = list(itertools.islice(op.sample_inputs("cpu", torch.{dtype}, requires_grad=True), {n}))[{index}]
first = list(s.input) if is_iterable_of_tensors(s.input) else [s.input]
inputs = [x for x in (*first, *s.args, *s.kwargs.values()) if isinstance(x, torch.Tensor) and x.requires_grad]

def floats(*xs):  # test_ops' gradcheck function, output flattened to its floating-point tensors
    it = iter(xs)
    take = lambda x: next(it) if isinstance(x, torch.Tensor) and x.requires_grad else x
    put = lambda x: [take(t) for t in x] if is_iterable_of_tensors(x) else take(x)
    out = op.gradcheck_wrapper(op.get_op(), put(s.input), *map(put, s.args), **{{k: put(v) for k, v in s.kwargs.items()}})
    return [t for t in tree_leaves(s.output_process_fn_grad(out)) if isinstance(t, torch.Tensor) and t.is_floating_point()]

keep = [t.requires_grad for t in floats(*inputs)]  # the outputs autograd differentiates, as gradcheck

def fn(*xs):
    outs = [t for t, k in zip(floats(*xs), keep) if k]
    return outs[0] if len(outs) == 1 else tuple(outs)

{check}
'''


def snippet(o: Outcome, r: float | None = None) -> str:
    op = OPS[o.op]
    check = "print(gp.torch.check(fn, *inputs, seed=0))"
    if r is not None:
        check = (
            "import sys; sys.path.insert(0, 'benchmarks')  # from the repository root\n"
            f"from opinfo import planted\nprint(gp.torch.check(planted(fn, {r!r}), *inputs, seed=0))"
        )
    key = (op.name, op.variant_test_name)
    return SNIPPET.format(key=key, dtype=o.dtype, n=o.index + 1, index=o.index, check=check)


def _tail(text: str, lines: int = 40) -> str:
    rows = text.rstrip().splitlines()
    return "\n".join(rows if len(rows) <= lines else ["..."] + rows[-lines:])


def _last_line(text: str) -> str:
    rows = [r for r in text.strip().splitlines() if r.strip()]
    return rows[-1][:200] if rows else ""


def _fail_kind(verdict: str) -> tuple[str, str]:
    """(kind, group) of a gradprobe FAIL of a correct op, from the verification's verdict."""
    main, _, note = verdict.partition(", ")
    if main == "false FAIL":
        return "false FAIL", note
    if main == "unverified":
        return "FAIL, unverified", note
    return "FAIL, true finding (autograd or float32 rounding wrong)", main + (f", {note}" if note else "")


def _message_group(text: str) -> str:
    """The last line of a message, with shapes blanked so that one cause makes one group."""
    return re.sub(r"\(shape \([^)]*\)\)", "(shape ...)", _last_line(text))


def finding_kinds(o: Outcome, bugs) -> list[tuple[str, str, str, float | None]]:
    """(kind, group, body, r) for each gradprobe mistake in this outcome."""
    found = []
    if o.skipped:
        return found
    gp_, head = o.gp, f"gradcheck: {o.gc.status}"
    if gp_.status == "crash":
        found.append(("crash", _message_group(gp_.text), _tail(gp_.text), None))
    elif gp_.status in ("limit", "refused"):
        found.append((gp_.status, _message_group(gp_.text), _tail(gp_.text), None))
    elif gp_.status == "fail":
        kind, group = _fail_kind(o.verdict)
        body = f"{head}\nverification:\n{o.verification}\n\n{_tail(gp_.text)}"
        found.append((kind, group, body, None))
    elif gp_.status == "inconclusive":
        reasons = "; ".join(sorted({r.split(": ")[1] for r in gp_.reasons}))
        found.append(("inconclusive", reasons, f"{head}\n\n{_tail(gp_.text)}", None))
    for r, (bug_gp, bug_gc) in o.bugs.items():
        if bug_gp.status != "fail":
            group = f"gradcheck {'caught' if bug_gc.status == 'fail' else bug_gc.status}"
            body = f"gradprobe {bug_gp.status}; {group}\n\n{_tail(bug_gp.text)}"
            found.append((f"planted bug {r:.0e} missed", group, body, r))
    return found


def write_findings(path: Path, outcomes: list[Outcome], bugs, command: str, version: str) -> None:
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for o in outcomes:
        for kind, group, body, r in finding_kinds(o, bugs):
            grouped[kind][group].append((o, body, r))
    order = ["crash", "limit", "false FAIL", "FAIL, unverified", "inconclusive", "refused"]
    kinds = sorted(grouped, key=lambda k: (order.index(k) if k in order else len(order), k))
    lines = ["# gradprobe on op_db: findings", "", f"Command: `{command}`, gradprobe at {version}.", "", "Counts:", ""]
    lines += [f"- {k}: {sum(len(v) for v in grouped[k].values())}" for k in kinds]
    for kind in kinds:
        lines += ["", f"## {kind}"]
        for group, items in sorted(grouped[kind].items(), key=lambda kv: -len(kv[1])):
            if group:
                lines += ["", f"### {group} ({len(items)})"]
            # One message makes one group of refusals or crashes: two in full, the rest by name.
            full = 2 if kind in ("refused", "crash", "limit") else len(items)
            for o, body, r in items[:full]:
                lines += [
                    "", f"#### {o.op} {o.dtype} sample {o.index} (inputs {o.shapes})", "",
                    "```text", body, "```", "", "```python", snippet(o, r).rstrip(), "```",
                ]
            if items[full:]:
                lines += ["", "The same for:", ""]
                lines += [f"- {o.op} {o.dtype} sample {o.index} (inputs {o.shapes})" for o, _, _ in items[full:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def select(ops: str | None, limit: int | None) -> list[str]:
    labels = list(OPS)
    if ops:
        wanted = [w.strip() for w in ops.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in OPS and not any(op.name == w for op in OPS.values())]
        if unknown:
            raise SystemExit(f"unknown ops: {', '.join(unknown)}")
        labels = [label for label in labels if label in wanted or OPS[label].name in wanted]
    return labels[:limit] if limit else labels


def warm_up() -> None:
    """One small check of each kind before the workers fork, so that they share the gradprobe
    modules loaded now instead of importing them later from a working tree that others edit."""
    x = torch.linspace(0.1, 0.9, 4, requires_grad=True)
    for dtype in DTYPES.values():
        xd = x.detach().to(dtype).requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.torch.check(torch.sin, xd, seed=0)
            gp.torch.check(planted(torch.sin, 1e-2), xd, seed=0)
            torch.autograd.gradcheck(torch.sin, (xd,), raise_exception=False)


def code_version() -> str:
    """The commit gradprobe was run at, and whether the working tree differed from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        dirty = git("status", "--porcelain", "--", "src")
        return git("rev-parse", "--short", "HEAD").strip() + (" with uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_all(labels, dtypes, options) -> tuple[list[Outcome], dict[str, Counter]]:
    tasks = [(label, d, options) for label in labels for d in dtypes]
    outcomes, op_skips = [], {d: Counter() for d in dtypes}
    warm_up()
    start = time.perf_counter()
    pool = None
    if options.jobs > 1:
        context = multiprocessing.get_context("fork")
        pool = context.Pool(options.jobs, limit_memory, (options.memory,), maxtasksperchild=20)
    else:
        limit_memory(options.memory)
    results = pool.imap_unordered(run_op, tasks) if pool else map(run_op, tasks)
    for done, (label, dtype, why, outs, seconds) in enumerate(results, 1):
        if why:
            op_skips[dtype][why] += 1
        outcomes += outs
        marks = " ".join(o.skipped and "skip" or f"{o.gp.status}/{o.gc.status}" for o in outs)
        clock = f"{time.perf_counter() - start:.0f} s"
        print(f"[{done}/{len(tasks)} {clock}] {label} {dtype} {seconds:.1f} s: {why or marks}",
              file=sys.stderr, flush=True)
    if pool:
        pool.close()
        pool.join()
    return outcomes, op_skips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="non-empty samples per op and dtype (default 3)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--ops", help="comma-separated op names (name or name.variant)")
    parser.add_argument("--limit", type=int, help="only the first N ops")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per check (default 60)")
    parser.add_argument("--memory", type=float, default=6.0, help="GiB of address space per worker (default 6)")
    parser.add_argument("--bugs", type=float, nargs="*", default=[1e-2, 1e-1], help="planted relative errors")
    parser.add_argument("--findings", type=Path, default=Path("/tmp/opinfo/findings.md"))
    parser.add_argument("--raw", type=Path, default=Path("/tmp/opinfo/outcomes.json"), help="every outcome, as JSON")
    parser.add_argument("--write", type=Path, help=f"replace (or append) the '{SECTION}' section of this file")
    args = parser.parse_args(argv)
    command = "python benchmarks/opinfo.py " + " ".join(argv if argv is not None else sys.argv[1:])

    version = code_version()
    start = time.perf_counter()
    outcomes, op_skips = run_all(select(args.ops, args.limit), args.dtypes, args)
    elapsed = time.perf_counter() - start

    body = []
    for d in args.dtypes:
        mine = [o for o in outcomes if o.dtype == d]
        body += ["", f"### {d}", "", *dtype_table(mine, op_skips[d], args.bugs)]
    body += ["", f"Wall time {elapsed:.0f} s with {args.jobs} worker(s); gradprobe at {version}."]
    print("\n".join(body))
    write_findings(args.findings, outcomes, args.bugs, command.strip(), version)
    args.raw.write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], default=str, indent=1))
    print(f"\nfindings: {args.findings}", file=sys.stderr)

    if args.write:
        section = [
            SECTION,
            "",
            f"Command: `{command.strip()}`",
            f"Machine: {platform.platform()}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
            f"torch {torch.__version__} (1 thread per worker). Date: {datetime.date.today().isoformat()}. "
            f"gradprobe at {version}.",
            "",
            "Every OpInfo of PyTorch's `op_db` with `supports_autograd`, its first samples as PyTorch's own "
            "gradient test takes them (`benchmarks/opinfo.py` says how), checked correct and with a planted "
            "bug (the first input's gradient times 1 + r in a custom `autograd.Function`) by "
            "`gp.torch.check(fn, *inputs)` and `torch.autograd.gradcheck(fn, inputs)`, both with their defaults. "
            "A gradprobe FAIL of a correct op is then checked against float64 finite differences of our own "
            "(in parentheses: false FAIL, autograd wrong, float32 imprecise, unverified).",
            *body,
        ]
        write_section(args.write, SECTION, "\n".join(section) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
