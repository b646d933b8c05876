"""Cost of a full check: loss evaluations per parameter, against gradcheck and the seed's loop.

Run:  python benchmarks/cost.py [--quick] [--repeats 5] [--write benchmarks/RESULTS.md]

Issue 15 asks `strategy="full"` for about two loss evaluations per parameter (at most 2.5 n + 60
on a small problem, n parameters). This measures it, with the verdicts beside it, on

* the bug suite (`bugsuite/cases.py`): 23 numpy losses, each with its correct gradient and its
  planted bugs (92), float64;
* the framework ops (`frameworks/torch_ops.py`): 15 custom ``torch.autograd.Function`` ops, each
  correct and with a planted bug, float64;
* three larger numpy problems (below): 400, 1,010 and 2,632 parameters, each correct and with two
  bugs.

Every check is run by three tools, interleaved (so that the machine's load weighs on all three
alike), ``--repeats`` times; evaluations and verdicts are the first run's, times the median:

* gradprobe, ``gp.check`` / ``gp.torch.check`` with ``strategy="full"`` and otherwise its defaults:
  ``report.nfev``, and its split by phase (``report.coverage.evaluations``: "setup" is the starting
  point and the noise tables, "coordinates" everything after them: the step ladders and, for a
  buggy gradient, its diagnosis, which has no phase of its own);
* ``torch.autograd.gradcheck``, defaults (slow mode, eps 1e-6, atol 1e-5, rtol 1e-3): its
  evaluations are calls of the function, counted by a wrapper (the numpy losses go through the bug
  suite's ``torch.autograd.Function`` wrapper);
* the seed's loop (deeplearning.ai ``gradient_check_n``): central differences per parameter with
  epsilon 1e-7, one relative difference over all parameters, wrong above 1e-7 (the bug suite's
  ``run_seed_rule``). A torch op becomes a numpy loss for it: ``<v, fn(inputs)>`` with a fixed
  Gaussian cotangent ``v`` (1 for a scalar output), its gradient the op's own backward.

A verdict is clean when a correct gradient passes and a buggy one fails blaming exactly the bug's
tensor (torch ops: the argument of ``op.fn`` that ``op.buggy_input`` points at).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import gradprobe as gp  # noqa: E402
from benchmarks._results import markdown, write_section  # noqa: E402
from benchmarks.bugsuite import cases as bugsuite  # noqa: E402
from benchmarks.bugsuite.run import Outcome, run_gradcheck, run_seed_rule  # noqa: E402

TOOLS = ("gradprobe", "gradcheck", "seed loop")
#: Issue 15's target for a small problem: nfev <= 2.5 n + TARGET_EXCESS.
TARGET_EXCESS = 60
COTANGENT_SEED = 15


@dataclass
class Cost(Outcome):
    """The bug suite's outcome of one check, with gradprobe's evaluations by phase."""

    phases: dict[str, int] = field(default_factory=dict)
    calls: int | None = None  # torch: calls of the function, which nfev need not equal (autograd's own, vmap)


@dataclass(frozen=True)
class Variant:
    """One gradient of a problem, correct (`culprit` None) or with a bug in tensor `culprit`."""

    label: str  # "correct" or "<bug kind> (<tensor>)"
    culprit: str | None
    tools: dict[str, Callable[[], Outcome]]


@dataclass(frozen=True)
class Problem:
    family: str  # "bug suite" | "torch op" | "larger"
    name: str
    n: int
    variants: tuple[Variant, ...]  # the correct gradient first


@dataclass
class Measured:
    problem: Problem
    variant: Variant
    outcomes: dict[str, Outcome]

    @property
    def key(self) -> tuple[str, str]:
        """The problem's identity: names repeat across families (`logsumexp`)."""
        return self.problem.family, self.problem.name

    @property
    def correct(self) -> bool:
        return self.variant.culprit is None

    @property
    def clean(self) -> dict[str, bool]:
        """Per tool: a pass on a correct gradient, a fail blaming exactly the culprit on a buggy one."""
        return {
            tool: o.status == "pass" if self.correct else (o.status == "fail" and o.blamed == {self.variant.culprit})
            for tool, o in self.outcomes.items()
        }


# -- the tools ---------------------------------------------------------------------------------------


def _from_report(report, seconds: float) -> Cost:
    reasons = sorted({t.reason for t in report.tensors.values() if t.status == "inconclusive" and t.reason})
    phases = dict(report.coverage.evaluations)
    return Cost(report.status, frozenset(report.failing), ",".join(reasons) or None, report.nfev, seconds, phases)


def gradprobe_numpy(case: bugsuite.Case, grad) -> Cost:
    start = time.perf_counter()
    report = gp.check(case.loss, grad, case.params, strategy="full")
    return _from_report(report, time.perf_counter() - start)


def gradprobe_torch(fn, make_inputs) -> Cost:
    import torch

    inputs = make_inputs(torch.float64)
    calls = 0

    @functools.wraps(fn)  # keeps the argument names gradprobe names the inputs by
    def counted(*args):
        nonlocal calls
        calls += 1
        return fn(*args)

    start = time.perf_counter()
    report = gp.torch.check(counted, *inputs, strategy="full")
    cost = _from_report(report, time.perf_counter() - start)
    cost.calls = calls
    return cost


def gradcheck_torch(fn, make_inputs, names: list[str]) -> Outcome:
    """`torch.autograd.gradcheck` (defaults) on `fn`, its evaluations counted (compare.py's runner)."""
    import torch

    from benchmarks.frameworks.compare import _gradcheck

    calls = 0

    def counted(*inputs):
        nonlocal calls
        calls += 1
        return fn(*inputs)

    start = time.perf_counter()
    said = _gradcheck(counted, make_inputs, torch.float64, fast=False)
    seconds = time.perf_counter() - start
    status = {"pass": "pass", "FAIL": "fail"}.get(said.verdict, "error")
    return Outcome(status, frozenset(names[i] for i in said.blamed), said.detail or None, calls, seconds)


def torch_as_case(name: str, fn, make_inputs, names: list[str]) -> bugsuite.Case:
    """A torch op as a numpy loss `<v, fn(inputs)>` and its gradient by the op's own backward, for
    the seed's loop, which needs a scalar loss and numpy parameters."""
    import torch

    inputs = make_inputs(torch.float64)
    shape = fn(*inputs).shape
    rng = np.random.default_rng(COTANGENT_SEED)
    v = torch.as_tensor(rng.standard_normal(shape)) if len(shape) else torch.tensor(1.0, dtype=torch.float64)

    def tensors(p, requires_grad=False):
        return [torch.tensor(p[k], dtype=torch.float64, requires_grad=requires_grad) for k in names]

    def loss(p):
        with torch.no_grad():
            return float((v * fn(*tensors(p))).sum())

    def grad(p):
        leaves = tensors(p, requires_grad=True)
        grads = torch.autograd.grad((v * fn(*leaves)).sum(), leaves)
        return {k: g.numpy() for k, g in zip(names, grads)}

    return bugsuite.Case(name, loss, grad, {k: t.detach().numpy().copy() for k, t in zip(names, inputs)})


# -- the problems --------------------------------------------------------------------------------------


def _numpy_tools(case: bugsuite.Case, grad) -> dict[str, Callable[[], Outcome]]:
    return {
        "gradprobe": functools.partial(gradprobe_numpy, case, grad),
        "gradcheck": functools.partial(run_gradcheck, case, grad, False),
        "seed loop": functools.partial(run_seed_rule, case, grad),
    }


def numpy_problem(family: str, case: bugsuite.Case, bugs: list[bugsuite.Bug]) -> Problem:
    variants = [Variant("correct", None, _numpy_tools(case, case.grad))]
    variants += [Variant(f"{b.kind} ({b.tensor})", b.tensor, _numpy_tools(case, b.grad)) for b in bugs]
    return Problem(family, case.name, sum(v.size for v in case.params.values()), tuple(variants))


def torch_problem(op) -> Problem:
    """An op, correct and buggy; its inputs named as gradprobe names them (the arguments of `op.fn`)."""
    import torch

    from benchmarks.frameworks.compare import _input_names

    names = _input_names(op)
    variants = []
    for fn, culprit in ((op.fn, None), (op.buggy_fn, names[op.buggy_input])):
        case = torch_as_case(op.name, fn, op.make_inputs, names)
        tools = {
            "gradprobe": functools.partial(gradprobe_torch, fn, op.make_inputs),
            "gradcheck": functools.partial(gradcheck_torch, fn, op.make_inputs, names),
            "seed loop": functools.partial(run_seed_rule, case, case.grad),
        }
        variants.append(Variant("correct" if culprit is None else f"bug ({culprit})", culprit, tools))
    n = sum(t.numel() for t in op.make_inputs(torch.float64) if t.requires_grad)
    return Problem("torch op", op.name, n, tuple(variants))


def _larger(name: str, loss, grad, params: dict, bugs: list[tuple[str, str, Callable]]):
    """A Case and its Bugs (sizes measured as the bug suite measures them)."""
    case = bugsuite.Case(name, loss, grad, params)
    specs = [bugsuite._Spec(kind, tensor, g) for kind, tensor, g in bugs]
    return case, [bugsuite.Bug(name, s.kind, s.tensor, bugsuite._bug_size(case, s), s.grad) for s in specs]


def tanh_sin():
    """sum(tanh(x) * sin(x)) over 400 inputs: one tensor, no data."""
    x = np.random.default_rng(1501).uniform(-3, 3, 400)

    def loss(p):
        return np.sum(np.tanh(p["x"]) * np.sin(p["x"]))

    def grad(p):
        t = np.tanh(p["x"])
        return {"x": (1 - t * t) * np.sin(p["x"]) + t * np.cos(p["x"])}

    return _larger("tanh_sin", loss, grad, {"x": x}, [
        ("one_element", "x", bugsuite._one_element(grad, "x", 123)),
        ("relative", "x", bugsuite._noisy(grad, "x", 1e-3, 1502)),
    ])


def softmax_regression():
    """Softmax cross-entropy of a linear map, 100 features, 10 classes, batch 64: 1,010 parameters."""
    rng = np.random.default_rng(1511)
    m, d, k = 64, 100, 10
    X, Y = rng.standard_normal((m, d)), np.eye(k)[rng.integers(0, k, m)]
    params = {"W": 0.1 * rng.standard_normal((d, k)), "b": 0.1 * rng.standard_normal(k)}

    def loss(p):
        return -np.mean(np.sum(Y * (X @ p["W"] + p["b"] - bugsuite._logsumexp(X @ p["W"] + p["b"])[:, None]), axis=1))

    def grad(p, bug=None):
        dZ = (bugsuite._softmax(X @ p["W"] + p["b"]) - Y) / m
        return {"W": X.T @ dZ, "b": dZ.sum(0) * (m if bug == "b without 1/m" else 1)}

    return _larger("softmax_regression", loss, grad, params, [
        ("missing_1/m", "b", functools.partial(grad, bug="b without 1/m")),
        ("one_element", "W", bugsuite._one_element(grad, "W", (37, 4))),
    ])


def mlp():
    """tanh MLP 32 -> 64 -> 8, squared error, batch 32: 2,632 parameters."""
    rng = np.random.default_rng(1521)
    m, n0, n1, n2 = 32, 32, 64, 8
    X, Y = rng.standard_normal((m, n0)), rng.standard_normal((m, n2))
    params = {
        "W1": rng.standard_normal((n0, n1)) / np.sqrt(n0), "b1": 0.1 * rng.standard_normal(n1),
        "W2": rng.standard_normal((n1, n2)) / np.sqrt(n1), "b2": 0.1 * rng.standard_normal(n2),
    }

    def loss(p):
        return 0.5 * np.mean(np.sum((np.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"] - Y) ** 2, axis=1))

    def grad(p, bug=None):
        A = np.tanh(X @ p["W1"] + p["b1"])
        dY = (A @ p["W2"] + p["b2"] - Y) / m
        dZ = (dY @ p["W2"].T) * (1 - A * A)
        dW2 = A.T @ dY * (2 if bug == "dW2 doubled" else 1)
        return {"W1": X.T @ dZ, "b1": dZ.sum(0), "W2": dW2, "b2": dY.sum(0)}

    return _larger("mlp", loss, grad, params, [
        ("factor", "W2", functools.partial(grad, bug="dW2 doubled")),
        ("one_element", "W1", bugsuite._one_element(grad, "W1", (5, 40))),
    ])


def problems(quick: bool) -> list[Problem]:
    """The bug suite's cases (quick: one bug each), the torch ops and (not quick) the larger ones."""
    from benchmarks.frameworks import torch_ops

    bugs = bugsuite.bugs()
    out = []
    for case in bugsuite.cases():
        own = [b for b in bugs if b.case == case.name]
        out.append(numpy_problem("bug suite", case, own[:1] if quick else own))
    out += [torch_problem(op) for op in torch_ops.ops()]
    if not quick:
        out += [numpy_problem("larger", *build()) for build in (tanh_sin, softmax_regression, mlp)]
    return out


# -- measuring -----------------------------------------------------------------------------------------


def measure(problem: Problem, variant: Variant, repeats: int) -> Measured:
    """Every tool `repeats` times, interleaved; the first run's outcome with the median time."""
    runs: dict[str, list[Outcome]] = {tool: [] for tool in TOOLS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gradcheck's and gradprobe's advice is not what is measured
        for _ in range(repeats):
            for tool in TOOLS:
                runs[tool].append(variant.tools[tool]())
    outcomes = {}
    for tool, done in runs.items():
        outcomes[tool] = done[0]
        outcomes[tool].seconds = statistics.median(o.seconds for o in done)
    return Measured(problem, variant, outcomes)


# -- tables ----------------------------------------------------------------------------------------------


def excess(m: Measured, tool: str = "gradprobe") -> float:
    """Evaluations beyond issue 15's 2.5 per parameter."""
    return m.outcomes[tool].nfev - 2.5 * m.problem.n


def _median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def _ratio(m: Measured, other: str) -> float:
    return m.outcomes["gradprobe"].seconds / m.outcomes[other].seconds


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _per_n(checks: list[Measured], tool: str, phase: str | None = None) -> str:
    """The median over `checks` of `tool`'s evaluations (or gradprobe's in `phase`) per parameter."""
    return _fmt(_median(
        (m.outcomes[tool].phases.get(phase, 0) if phase else m.outcomes[tool].nfev) / m.problem.n for m in checks
    ), 2)  # fmt: skip


def cost_rows(measured: list[Measured]) -> list[dict[str, str]]:
    """One row per set of problems and per gradient (correct, buggy): the medians over its checks."""
    families = list(dict.fromkeys(m.problem.family for m in measured))
    sets = [(f, [m for m in measured if m.problem.family == f]) for f in families]
    small = [m for m in measured if m.problem.family != "larger"]
    if len(families) > 1:
        sets.append(("bug suite + torch ops", small))
    rows = []
    for label, members in sets:
        for which in ("correct", "buggy"):
            chosen = [m for m in members if m.correct == (which == "correct")]
            if not chosen:
                continue
            excesses = [excess(m) for m in chosen]
            rows.append({
                "problems": f"{label} ({len({m.key for m in chosen})})",
                "gradient": f"{which} ({len(chosen)})",
                "gradprobe nfev / n": _per_n(chosen, "gradprobe"),
                "gradprobe nfev - 2.5 n (min to max)":
                    f"**{_fmt(_median(excesses))}** ({_fmt(min(excesses))} to {_fmt(max(excesses))})",
                "within 2.5 n + 60": f"{sum(e <= TARGET_EXCESS for e in excesses)} / {len(chosen)}",
                "setup evaluations": _fmt(_median(m.outcomes["gradprobe"].phases.get("setup", 0) for m in chosen)),
                "coordinates / n": _per_n(chosen, "gradprobe", "coordinates"),
                "gradcheck nfev / n": _per_n(chosen, "gradcheck"),
                "seed loop nfev / n": _per_n(chosen, "seed loop"),
                "time gradprobe / gradcheck": _fmt(_median(_ratio(m, "gradcheck") for m in chosen), 2) + "x",
                "time gradprobe / seed loop": _fmt(_median(_ratio(m, "seed loop") for m in chosen), 2) + "x",
            })
    return rows


def verdict_rows(measured: list[Measured]) -> list[dict[str, str]]:
    families = list(dict.fromkeys(m.problem.family for m in measured))
    rows = []
    for tool in TOOLS:
        for family in families:
            members = [m for m in measured if m.problem.family == family]
            correct = [m.outcomes[tool] for m in members if m.correct]
            buggy = [m for m in members if not m.correct]
            caught = sum(m.outcomes[tool].status == "fail" for m in buggy)
            rows.append({
                "tool": tool,
                "problems": family,
                "false alarms": f"{sum(o.status == 'fail' for o in correct)} / {len(correct)}",
                "inconclusive (correct)": f"{sum(o.status == 'inconclusive' for o in correct)} / {len(correct)}",
                "bugs caught": f"{caught} / {len(buggy)}",
                "inconclusive (buggy)":
                    f"{sum(m.outcomes[tool].status == 'inconclusive' for m in buggy)} / {len(buggy)}",
                "right tensor blamed": f"{sum(m.clean[tool] for m in buggy)} / {len(buggy)}",
            })
    return rows


def problem_rows(measured: list[Measured]) -> list[dict[str, str]]:
    """One row per problem: its correct gradient's cost, and the median over its bugs."""
    rows = []
    for key in dict.fromkeys(m.key for m in measured):
        mine = [m for m in measured if m.key == key]
        correct, buggy = mine[0], mine[1:]
        gp_ = correct.outcomes["gradprobe"]
        rows.append({
            "problem": f"{key[1]} ({key[0]})",
            "n": f"{correct.problem.n:,}",
            "gradprobe nfev": f"{gp_.nfev:,}",
            "nfev / n": _fmt(gp_.nfev / correct.problem.n, 2),
            "nfev - 2.5 n": _fmt(excess(correct)),
            "setup": f"{gp_.phases.get('setup', 0)}",
            "bugs: median nfev - 2.5 n": _fmt(_median(excess(m) for m in buggy)) + f" ({len(buggy)})",
            "gradcheck nfev": f"{correct.outcomes['gradcheck'].nfev:,}",
            "seed loop nfev": f"{correct.outcomes['seed loop'].nfev:,}",
            "ms: gradprobe / gradcheck / seed": " / ".join(f"{1e3 * correct.outcomes[t].seconds:.1f}" for t in TOOLS),
            "time gradprobe / gradcheck": _fmt(_median(_ratio(m, "gradcheck") for m in mine), 2) + "x",
        })
    return rows


def unclean(measured: list[Measured]) -> list[str]:
    """Every verdict that is not clean, per tool, one line each."""
    lines = []
    for tool in TOOLS:
        for m in measured:
            if not m.clean[tool]:
                o = m.outcomes[tool]
                lines.append(
                    f"{tool}: {m.problem.name} {m.variant.label}: {o.status}"
                    + (f", blamed {', '.join(sorted(o.blamed))}" if o.blamed else "")
                    + (f" ({o.reason})" if o.reason and tool == "gradprobe" else "")
                )
    return lines


# -- the section -------------------------------------------------------------------------------------------


def code_version() -> str:
    """The commit measured, and what in the working tree differed from it (read-only git calls)."""

    def git(*args: str) -> str:
        # --no-optional-locks: `git status` must not rewrite the index while other sessions use it
        command = ["git", "--no-optional-locks", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    in_src = [path for path in changed if path.startswith("src/")]
    if not changed:
        return f"commit {commit}, clean tree"
    return f"commit {commit}, " + (
        f"with uncommitted changes in src/ ({', '.join(in_src)})" if in_src else "src/ as committed"
    ) + f"; uncommitted elsewhere: {', '.join(p for p in changed if not p.startswith('src/')) or 'nothing'}"


def machine() -> str:
    import torch

    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.platform()}, nproc {os.cpu_count()} (shared; load average {load} at the end), "
        f"Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} (1 thread)"
    )


def section(measured: list[Measured], command: str, repeats: int, quick: bool) -> str:
    small = [m for m in measured if m.problem.family != "larger" and m.correct]
    overhead = _median(m.outcomes["gradprobe"].phases.get("setup", 0) for m in small)
    coordinates = _median(m.outcomes["gradprobe"].phases.get("coordinates", 0) / m.problem.n for m in small)
    problems_ = len({m.key for m in measured})
    smallest = min(small, key=lambda m: m.problem.n)
    lines = [
        "## Cost",
        "",
        f"Command: `{command}`",
        f"Machine: {machine()}. Date: {datetime.date.today().isoformat()}. Code: {code_version()}.",
        "",
        f"Issue 15's measure (a full check in about two loss evaluations per parameter: at most "
        f"2.5 n + {TARGET_EXCESS} on a small problem, median over the problems). {problems_} problems, each with its correct gradient and "
        f"{'one' if quick else 'its'} planted bug{'' if quick else 's'}, all float64: the bug suite's numpy "
        "losses (`bugsuite/cases.py`), the custom torch Functions of `frameworks/torch_ops.py`"
        + ("" if quick else " and larger numpy problems (`tanh(x) * sin(x)` over 400 inputs, a softmax "
           "regression of 1,010 parameters, a tanh MLP of 2,632), each with two bugs")
        + ". Each checked by gradprobe (`strategy=\"full\"`, "
        "other options default), `torch.autograd.gradcheck` (defaults: slow mode) and the seed's loop "
        "(central differences with epsilon 1e-7, one relative difference, wrong above 1e-7). Evaluations are "
        "calls of the loss (gradprobe: `report.nfev`; gradcheck and the seed's loop: counted calls); "
        "*setup* is gradprobe's starting point and noise tables, *coordinates* all it spends after them (the "
        "scouts' step ladders, the screening pairs, the ladders of elements refined and, for a buggy gradient, "
        "its diagnosis: `report.coverage.evaluations`). Times are "
        + (f"the median of {repeats} interleaved runs per check" if repeats > 1 else "one run per check")
        + "; ratios are per check, then the median over the checks.",
        "",
        "### Evaluations and time",
        "",
        markdown(cost_rows(measured)),
        "",
        "### Verdicts",
        "",
        "A *false alarm* fails a correct gradient; *right tensor blamed* fails a buggy one naming exactly the "
        "bug's tensor.",
        "",
        markdown(verdict_rows(measured)),
        "",
        "### Per problem",
        "",
        "The correct gradient's cost; the bugs' median excess over 2.5 n (their count in brackets); the time "
        "ratio is the median over the problem's checks, correct and buggy.",
        "",
        markdown(problem_rows(measured)),
        "",
        "Reading the tables:",
        "",
        f"- A correct small gradient costs a median {_median(excess(m) for m in small):.0f} evaluations "
        f"beyond 2.5 n (issue 15's target: {TARGET_EXCESS} or less; {sum(excess(m) <= TARGET_EXCESS for m in small)} "
        f"of {len(small)} checks within it); the smallest problem ({smallest.problem.name}, n = "
        f"{smallest.problem.n}) spends {smallest.outcomes['gradprobe'].nfev}.",
        f"- On a correct small gradient gradprobe spends a median {coordinates:.2f} evaluations per parameter "
        f"on coordinates (two per screened element; 6 to 10 per scout, three per tensor of 6 elements or more, "
        f"and per element of a smaller tensor) and {overhead:.0f} on setup (the starting point and the noise "
        "tables, about twice as many below 17 parameters): on the smallest problems the setup and the "
        "ladders of their tensors below 6 elements are most of the excess over 2.5 n.",
        "- A buggy gradient costs more: a tensor whose scouts disagree with it is probed on full ladders "
        "throughout (about 6 per element), as is every element that disagrees, and the diagnosis adds its own.",
        "- gradcheck's slow mode and the seed's loop spend 2 evaluations per parameter (gradcheck: plus two "
        "plain calls, and per output element one backward call that is not counted here).",
    ]
    torch_checks = [m.outcomes["gradprobe"] for m in measured if m.outcomes["gradprobe"].calls is not None]
    extra = sorted({o.calls - o.nfev for o in torch_checks})
    if extra:
        lines.append(
            f"- On the torch ops gradprobe makes {extra[0]}"
            + (f" to {extra[-1]}" if len(extra) > 1 else "")
            + " more calls of the function than its "
            "`nfev` (its first call, for the outputs' shapes; the test of whether vmap batching is exact; the "
            "forward passes of the autograd gradients it takes); "
            "the tables count `nfev`."
        )
    details = unclean(measured)
    if details:
        lines += ["", "Verdicts that are not clean (a pass on a correct gradient, a fail blaming exactly the bug's "
                  "tensor on a buggy one):", "", *[f"- {line}" for line in details]]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one bug per bug-suite case, no larger problems, 1 repeat")
    parser.add_argument("--repeats", type=int, default=5, help="runs per check and tool, for the median time")
    parser.add_argument("--write", type=Path, help="replace the '## Cost' section of this markdown file")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    import torch

    torch.set_num_threads(1)
    np.seterr(all="ignore")
    chosen = problems(args.quick)
    measure(chosen[0], chosen[0].variants[0], 1)  # warm-up: the first gradcheck call pays torch's start-up
    measured = []
    for problem in chosen:
        for variant in problem.variants:
            measured.append(measure(problem, variant, repeats))
        print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)

    command = "python benchmarks/cost.py" + (" --quick" if args.quick else "") + (
        f" --repeats {args.repeats}" if args.repeats != 5 and not args.quick else "") + (
        f" --write {args.write}" if args.write else "")  # fmt: skip
    text = section(measured, command, repeats, args.quick)
    print(text)
    if args.write:
        write_section(args.write, "## Cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
