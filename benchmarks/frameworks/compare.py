"""gradprobe against the frameworks' own checkers, side by side in one run.

Run from the repository root:

    python -m benchmarks.frameworks.compare                    # print the tables
    python -m benchmarks.frameworks.compare --write benchmarks/RESULTS.md

PyTorch: the 15 custom ``torch.autograd.Function`` ops of `torch_ops` (each correct and with a
planted bug), in float64 and float32, checked by ``torch.autograd.gradcheck`` with its defaults
(slow mode and ``fast_mode=True``) and by ``gp.torch.check`` with its defaults. Then the three
`torch_ops.extra_cases` (max-pool at exact ties, with an even split and with argmax routing; the
leaky ReLU whose slope is a float32 tensor), reported on their own and not counted: what each tool
says about them, not a score.

JAX: the 7 ``jax.custom_vjp`` ops of `jax_ops`, checked by
``jax.test_util.check_grads(fn, args, order=1, modes=["rev"])`` (reverse mode only: a custom_vjp
function has no forward mode) and by ``gp.jax.check``, in float32 (JAX's default) and float64
(``jax.enable_x64``).

For every case: the verdict, whether a correct op was flagged (false alarm) or a buggy op passed
(miss), which input was blamed, and the median wall time over ``--repeats`` runs (JAX: also the
first, compiling, call). torch runs with one intra-op thread, for both tools.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field

if __package__ in (None, ""):  # allow `python benchmarks/frameworks/compare.py`
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src")))

import numpy as np

COMMAND = "python -m benchmarks.frameworks.compare --write benchmarks/RESULTS.md"


@dataclass
class Outcome:
    """One tool on one case: verdict ('pass', 'FAIL', 'inconclusive', 'ERROR'), blamed inputs, times."""

    verdict: str
    blamed: tuple[int, ...] = ()
    detail: str = ""
    kinks: int = 0
    difference: float = float("nan")  # gradprobe: the report's difference and resolution
    resolution: float = float("nan")
    times: list[float] = field(default_factory=list)
    verdicts_seen: set[str] = field(default_factory=set)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times)


def _timed(run, repeats: int) -> Outcome:
    first = None
    for _ in range(repeats):
        start = time.perf_counter()
        outcome = run()
        elapsed = time.perf_counter() - start
        if first is None:
            first = outcome
        first.times.append(elapsed)
        first.verdicts_seen.add(outcome.verdict)
    return first


# -- torch -----------------------------------------------------------------------------------------


def _gradcheck(fn, make_inputs, dtype, fast: bool) -> Outcome:
    import torch
    from torch.autograd.gradcheck import GradcheckError

    inputs = make_inputs(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not double precision" warnings in float32
        try:
            torch.autograd.gradcheck(fn, inputs, fast_mode=fast)
            return Outcome("pass")
        except GradcheckError as error:
            found = re.search(r"with respect to input (\d+)", str(error))
            return Outcome("FAIL", (int(found.group(1)),) if found else (), str(error).splitlines()[0])
        except Exception as error:  # anything else is an error, not a detection
            return Outcome("ERROR", (), f"{type(error).__name__}: {error}".splitlines()[0])


def _gradprobe_torch(fn, make_inputs, dtype) -> Outcome:
    import gradprobe as gp

    inputs = make_inputs(dtype)
    report = gp.torch.check(fn, *inputs)
    names = list(report.tensors)
    blamed = tuple(names.index(n) for n in report.failing)
    kinks = sum(len(t.kinks) for t in report.tensors.values())
    reasons = sorted({t.reason for t in report.tensors.values() if t.reason})
    detail = ", ".join(
        [*(f"{n}: {report.tensors[n].diagnosis}" for n in report.failing), *(f"reason: {r}" for r in reasons)]
        + ([f"{kinks} at kinks"] if kinks else [])
        + (["noted non-deterministic"] if any("non-deterministic" in note for note in report.notes) else [])
    )
    status = report.status if report.status != "fail" else "FAIL"
    return Outcome(status, blamed, detail, kinks, report.difference, report.resolution)


def _torch_tools(fn, make_inputs, dtype, repeats: int) -> dict[str, Outcome]:
    return {
        "gradcheck slow": _timed(lambda: _gradcheck(fn, make_inputs, dtype, False), repeats),
        "gradcheck fast": _timed(lambda: _gradcheck(fn, make_inputs, dtype, True), repeats),
        "gradprobe": _timed(lambda: _gradprobe_torch(fn, make_inputs, dtype), repeats),
    }


def run_torch(repeats: int) -> tuple[dict, dict]:
    """(pairs, extras): pairs[(dtype, op, 'correct'|'buggy')] = (op, row); extras[(dtype, case)] = (case, row)."""
    import torch

    from benchmarks.frameworks import torch_ops

    torch.set_num_threads(1)
    results, extras = {}, {}
    for dtype in (torch.float64, torch.float32):
        label = str(dtype).removeprefix("torch.")
        for op in torch_ops.ops():
            for kind, fn in (("correct", op.fn), ("buggy", op.buggy_fn)):
                results[(label, op.name, kind)] = (op, _torch_tools(fn, op.make_inputs, dtype, repeats))
                print(".", end="", flush=True, file=sys.stderr)
        for case in torch_ops.extra_cases():
            extras[(label, case.name)] = (case, _torch_tools(case.fn, case.make_inputs, dtype, repeats))
            print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    return results, extras


# -- jax -------------------------------------------------------------------------------------------


def _check_grads(fn, args) -> Outcome:
    from jax.test_util import check_grads

    try:
        check_grads(fn, args, order=1, modes=["rev"])
        return Outcome("pass")
    except AssertionError as error:
        return Outcome("FAIL", (), " ".join(str(error).split())[:80])
    except Exception as error:
        return Outcome("ERROR", (), f"{type(error).__name__}: {error}".splitlines()[0])


def _gradprobe_jax(fn, args) -> Outcome:
    import gradprobe as gp

    report = gp.jax.check(fn, *args)
    names = list(report.tensors)
    detail = ", ".join(f"{n}: {report.tensors[n].diagnosis}" for n in report.failing)
    return Outcome(report.status if report.status != "fail" else "FAIL", tuple(names.index(n) for n in report.failing), detail)


def run_jax(repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from benchmarks.frameworks import jax_ops

    results = {}
    for label, x64, dtype in (("float64", True, jnp.float64), ("float32", False, jnp.float32)):
        with jax.enable_x64(x64):
            for op in jax_ops.ops():
                for kind, fn in (("correct", op.fn), ("buggy", op.buggy_fn)):
                    args = op.make_args(dtype)
                    assert all(a.dtype == dtype for a in args)
                    row = {
                        "check_grads": _timed(lambda: _check_grads(fn, args), repeats + 1),
                        "gradprobe": _timed(lambda: _gradprobe_jax(fn, args), repeats + 1),
                    }
                    results[(label, op.name, kind)] = (op, row)
                    print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    return results


# -- tables ----------------------------------------------------------------------------------------


def _cell(outcome: Outcome, kind: str, culprit: int, names: list[str]) -> str:
    verdict = outcome.verdict
    if verdict == "FAIL":
        blame = ",".join(names[i] if i < len(names) else str(i) for i in outcome.blamed)
        text = ("**FALSE ALARM**" if kind == "correct" else "caught") + (f" ({blame})" if blame else "")
        if kind == "buggy" and outcome.blamed and outcome.blamed != (culprit,):
            text += " wrong blame"
    elif verdict == "pass":
        text = "pass" if kind == "correct" else "**missed**"
        if outcome.kinks:
            text += f" ({outcome.kinks} at kinks)"
    else:
        text = verdict + (f" ({outcome.kinks} at kinks)" if outcome.kinks else "")
    if len(outcome.verdicts_seen) > 1:
        text += f" (varies: {'/'.join(sorted(outcome.verdicts_seen))})"
    return text


def _input_names(op) -> list[str]:
    import inspect

    try:
        return list(inspect.signature(op.fn).parameters)
    except (TypeError, ValueError):
        return []


def torch_tables(results: dict) -> list[str]:
    lines = []
    tools = ["gradcheck slow", "gradcheck fast", "gradprobe"]
    for dtype in ("float64", "float32"):
        lines += [
            f"#### PyTorch, {dtype}",
            "",
            "| op (buggy input) | " + " | ".join(f"{t}: correct / buggy" for t in tools) + " | ms: slow / fast / gradprobe |",
            "|---|" + "---|" * (len(tools) + 1),
        ]
        summary = {t: {"false alarms": 0, "misses": 0, "wrong blame": 0, "times": []} for t in tools}
        notes, diagnoses = [], []
        for (d, name, kind), (op, row) in results.items():
            if d != dtype or kind != "correct":
                continue
            buggy_row = results[(d, name, "buggy")][1]
            names = _input_names(op)
            cells = []
            for tool in tools:
                good, bad = row[tool], buggy_row[tool]
                cells.append(f"{_cell(good, 'correct', op.buggy_input, names)} / {_cell(bad, 'buggy', op.buggy_input, names)}")
                summary[tool]["false alarms"] += good.verdict == "FAIL"
                summary[tool]["misses"] += bad.verdict == "pass"
                summary[tool]["wrong blame"] += bad.verdict == "FAIL" and bool(bad.blamed) and bad.blamed != (op.buggy_input,)
                summary[tool]["times"] += [good.median_ms, bad.median_ms]
                if tool == "gradprobe":
                    if bad.verdict == "FAIL":
                        diagnoses.append(f"{name}: {bad.detail}")
                    for kind_, outcome in (("correct", good), ("buggy", bad)):
                        if (kind_ == "correct") == (outcome.verdict == "FAIL") or "non-det" in outcome.detail:
                            notes.append(f"{name} {kind_}: {outcome.verdict}, {outcome.detail}")
            times = " / ".join(
                f"{statistics.median([row[t].median_ms, buggy_row[t].median_ms]):.1f}" for t in tools
            )
            culprit = names[op.buggy_input] if names else str(op.buggy_input)
            lines.append(f"| {name} ({culprit}) | " + " | ".join(cells) + f" | {times} |")
        lines.append("")
        lines.append("| tool | false alarms (of %d correct) | misses (of %d buggy) | wrong blame | median ms per check |" % (
            len([k for k in results if k[0] == dtype and k[2] == "correct"]),
            len([k for k in results if k[0] == dtype and k[2] == "buggy"]),
        ))
        lines.append("|---|---|---|---|---|")
        for tool in tools:
            s = summary[tool]
            lines.append(
                f"| {tool} | {s['false alarms']} | {s['misses']} | {s['wrong blame']} | {statistics.median(s['times']):.1f} |"
            )
        lines.append("")
        if notes:
            lines.append(f"gradprobe, {dtype}, cases to read: " + "; ".join(notes) + ".")
            lines.append("")
        lines.append(f"gradprobe's diagnoses of the caught bugs ({dtype}): " + "; ".join(diagnoses) + ".")
        lines.append("")
    return lines


def jax_tables(results: dict) -> list[str]:
    lines = []
    tools = ["check_grads", "gradprobe"]
    for dtype in ("float64", "float32"):
        lines += [
            f"#### JAX, {dtype}",
            "",
            "| op (buggy arg) | check_grads: correct / buggy | gradprobe: correct / buggy | ms first call: check_grads / gradprobe | ms median after: check_grads / gradprobe |",
            "|---|---|---|---|---|",
        ]
        summary = {t: {"false alarms": 0, "misses": 0, "first": [], "warm": []} for t in tools}
        for (d, name, kind), (op, row) in results.items():
            if d != dtype or kind != "correct":
                continue
            buggy_row = results[(d, name, "buggy")][1]
            try:
                import inspect

                names = list(inspect.signature(op.fn).parameters)
            except (TypeError, ValueError):
                names = []
            cells, first, warm = [], [], []
            for tool in tools:
                good, bad = row[tool], buggy_row[tool]
                cells.append(f"{_cell(good, 'correct', op.buggy_arg, names)} / {_cell(bad, 'buggy', op.buggy_arg, names)}")
                summary[tool]["false alarms"] += good.verdict == "FAIL"
                summary[tool]["misses"] += bad.verdict == "pass"
                f_ms = [1e3 * o.times[0] for o in (good, bad)]
                w_ms = [1e3 * statistics.median(o.times[1:]) for o in (good, bad)]
                summary[tool]["first"] += f_ms
                summary[tool]["warm"] += w_ms
                first.append(f"{statistics.median(f_ms):.0f}")
                warm.append(f"{statistics.median(w_ms):.1f}")
            culprit = names[op.buggy_arg] if names else str(op.buggy_arg)
            lines.append(f"| {name} ({culprit}) | " + " | ".join(cells) + f" | {' / '.join(first)} | {' / '.join(warm)} |")
        lines += ["", "| tool | false alarms | misses | median ms first call | median ms after |", "|---|---|---|---|---|"]
        for tool in tools:
            s = summary[tool]
            lines.append(
                f"| {tool} | {s['false alarms']} | {s['misses']} | {statistics.median(s['first']):.0f} | {statistics.median(s['warm']):.1f} |"
            )
        lines.append("")
    return lines


def extra_tables(extras: dict) -> list[str]:
    """The extra cases: one row per function, what each tool said in each dtype (not a score)."""
    tools = ["gradcheck slow", "gradcheck fast", "gradprobe"]
    lines = [
        "#### PyTorch, extra cases (not counted above)",
        "",
        "| case | backward | " + " | ".join(f"{t}: float64 / float32" for t in tools)
        + " | gradprobe expected | ms float64: slow / fast / gradprobe |",
        "|---|---|" + "---|" * (len(tools) + 2),
    ]
    names = list(dict.fromkeys(name for _, name in extras))
    for name in names:
        case = extras[("float64", name)][0]
        cells = []
        for tool in tools:
            said = []
            for dtype in ("float64", "float32"):
                outcome = extras[(dtype, name)][1][tool]
                text = outcome.verdict + (" (x)" if outcome.verdict == "FAIL" and outcome.blamed else "")
                if outcome.kinks:
                    text += f" ({outcome.kinks} at kinks)"
                if len(outcome.verdicts_seen) > 1:
                    text += f" (varies: {'/'.join(sorted(outcome.verdicts_seen))})"
                said.append(text)
            cells.append(" / ".join(said))
        times = " / ".join(f"{extras[('float64', name)][1][t].median_ms:.1f}" for t in tools)
        lines.append(f"| {name} | {case.what} | " + " | ".join(cells) + f" | {case.expected} | {times} |")
    lines.append("")
    return lines


def reading(torch_results: dict | None, extras: dict | None) -> list[str]:
    """What the extra cases are for, in this run's words."""
    if torch_results is None or extras is None:
        return []

    def said(dtype: str, name: str, tool: str = "gradprobe") -> str:
        key = (dtype, name)
        if key not in extras:
            return "not run"
        outcome = extras[key][1][tool]
        return outcome.verdict + (f", {outcome.detail}" if outcome.detail and tool == "gradprobe" else "")

    slope = extras.get(("float64", "leaky_relu_f32_slope"))
    resolution = f"{slope[1]['gradprobe'].resolution:.1e}" if slope else "?"
    return [
        "Besides the 15 correct/buggy pairs, three extra cases are reported on their own (last table),",
        "since no score applies to them:",
        "",
        "- **gradprobe found a bug in our own \"correct\" op that gradcheck passed.** The first version of",
        "  `leaky_relu_near_kink`'s correct backward built its slope with `torch.where(x > 0, 1.0, 0.1)`: two",
        "  Python scalars make a float32 tensor, so for float64 inputs every negative element got the slope",
        "  0.10000000149 instead of 0.1, 1.5e-8 relative too large. gradcheck passes it in float64 (slow: "
        f"{said('float64', 'leaky_relu_f32_slope', 'gradcheck slow')},",
        f"  fast: {said('float64', 'leaky_relu_f32_slope', 'gradcheck fast')}; the error is far below its rtol=1e-3);"
        f" gradprobe fails it (float64: {said('float64', 'leaky_relu_f32_slope')};",
        f"  its resolution there is {resolution}). The op in the tables above now builds its slope in x's dtype",
        "  (`torch.full_like(x, 0.1)`); the float32-slope version is kept as the extra case",
        "  `leaky_relu_f32_slope`, expected to fail in float64 and to pass in float32, where 0.1f is the right",
        f"  slope (gradprobe, float32: {said('float32', 'leaky_relu_f32_slope')}).",
        "- `maxpool1d_ties`: max-pool (kernel 3, stride 3) on inputs with exact 2-way ties at window maxima.",
        "  At an exact tie the loss has a kink: its one-sided derivatives are 0 and 1, so both the even split",
        "  (1/2, 1/2) and argmax routing (1, 0) are valid one-sided gradients, and no finite-difference checker",
        "  can call either wrong. gradprobe lists the tied elements as kinks and gives no verdict for both",
        f"  (even split, float64: {said('float64', 'maxpool1d_ties, even split')}; argmax, float64:",
        f"  {said('float64', 'maxpool1d_ties, argmax')}): correct behaviour, not a miss. gradcheck's central",
        "  difference sees 1/2 at a tie, so it passes the even split and fails argmax routing (which is what",
        "  `torch.nn.functional.max_pool1d`'s own backward does). The `maxpool1d` pair in the tables above has a",
        "  genuine bug instead: overlapping windows (kernel 3, stride 2) on inputs without ties (values at least",
        "  0.2 apart), six elements that are the maximum of both windows they belong to, and a backward that",
        "  scatters with overwrite instead of scatter_add, so those six get one window's gradient only.",
    ]


def machine() -> str:
    parts = [platform.platform(), f"{os.cpu_count()} CPUs", f"Python {platform.python_version()}"]
    for module in ("torch", "jax"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return ", ".join(parts)


def section(torch_results: tuple[dict, dict] | None, jax_results: dict | None, repeats: int) -> str:
    pairs, extras = torch_results if torch_results is not None else (None, None)
    lines = [
        "## Frameworks",
        "",
        f"Command: `{COMMAND}` (repeats={repeats}).",
        f"Machine: {machine()}; torch with 1 intra-op thread. Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}.",
        "",
        "Verdicts: `pass`; `caught (x)` = a buggy op failed, blaming input `x` (`wrong blame`: not the input with",
        "the bug); `**FALSE ALARM**` = a correct op failed; `**missed**` = a buggy op passed; `(k at kinks)` =",
        "gradprobe listed k elements as sitting at a non-differentiable point; `inconclusive` = gradprobe could not",
        "decide. Times are medians over the repeats, in milliseconds per check (PyTorch: per op, the median of",
        "its correct and buggy check). `check_grads` names no argument, so its blame column is empty.",
        "",
        *reading(pairs, extras),
        "",
    ]
    if pairs is not None:
        lines += torch_tables(pairs)
        lines += extra_tables(extras)
    if jax_results is not None:
        lines += jax_tables(jax_results)
    return "\n".join(lines).rstrip() + "\n"


def write_section(path: str, text: str) -> None:
    """Replace this benchmark's `## Frameworks` section of RESULTS.md, leaving the others alone."""
    existing = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = existing.find("\n## Frameworks\n")
    if start < 0:
        updated = existing.rstrip() + "\n\n" + text
    else:
        following = existing.find("\n## ", start + 1)
        tail = existing[following:] if following >= 0 else ""
        # The GPU run (`gpu_check.py` on a device machine) is recorded by hand: keep it.
        old = existing[start : following if following >= 0 else len(existing)]
        kept = old.find("\n### On a GPU")
        if kept >= 0:
            text = text.rstrip() + "\n" + old[kept:].rstrip() + "\n"
        updated = existing[: start + 1] + text + tail
    with open(path, "w") as handle:
        handle.write(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-only", action="store_true")
    parser.add_argument("--jax-only", action="store_true")
    parser.add_argument("--write", metavar="RESULTS.md", help="replace the `## Frameworks` section of this file")
    args = parser.parse_args(argv)
    np.seterr(all="ignore")
    torch_results = None if args.jax_only else run_torch(args.repeats)
    jax_results = None if args.torch_only else run_jax(args.repeats)
    text = section(torch_results, jax_results, args.repeats)
    print(text)
    if args.write:
        write_section(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
