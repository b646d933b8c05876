"""Beyond first-order reverse mode (issue 14): gradprobe and the frameworks' own checkers, side by side.

Run from the repository root:

    python -m benchmarks.frameworks.beyond                    # print the tables
    python -m benchmarks.frameworks.beyond --write benchmarks/RESULTS.md

The cases are `beyond_ops`'s, each correct and with planted bugs, in float64 and float32 (the
complex ones in complex128 and complex64), four parts:

1. **Second order**: custom torch Functions and ``jax.custom_vjp`` ops whose backward is right but
   whose double backward is missing (detached) or scaled by 3/2. gradprobe: ``order=2``. Anchors:
   ``gradcheck`` then ``gradgradcheck``; ``check_grads`` at order 1 then order 2 (``modes=("rev",)``).
2. **Forward-mode rules**: torch Functions with a ``jvp`` (wrong jvp, or wrong backward) and
   ``jax.custom_jvp`` ops (wrong rule). gradprobe: ``mode="both"``. Anchors: ``gradcheck`` (its
   default checks the backward only) and ``gradcheck(check_forward_ad=True)``; ``check_grads`` at
   order 1 in each mode, and at order 2 (``modes=("fwd", "rev")``).
3. **Bugs a special point hides**: a transposed weight gradient where it is symmetric, a backward
   that forgets a bias that is zero. gradprobe with its default (``points=1``) and ``points=3``.
4. **Complex inputs**: correct, conjugated and wrongly scaled backwards. If gradprobe refuses
   complex tensors, its column says so (and the anchors are still measured).

A tool *catches* a bug when it fails the buggy case; it *blames* right when the inputs it names
are the ones with the bug (gradcheck names one, gradprobe every failing one, check_grads none) and
the derivative it names ("backward", "double backward", "jvp") is one the bug is in. Wall times are
medians over ``--repeats`` runs per check (JAX: the first, compiling, run is one of them); torch
runs with one intra-op thread for every tool.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # allow `python benchmarks/frameworks/beyond.py`
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src")))

from benchmarks._results import markdown, write_section
from benchmarks.frameworks.compare import Outcome, _timed, machine

COMMAND = "python -m benchmarks.frameworks.beyond --write benchmarks/RESULTS.md"
TITLE = "## Beyond first order"
DTYPES = ("float64", "float32")


@dataclass
class Said(Outcome):
    """compare's `Outcome` (verdict, blamed input indices, detail, times), and the derivative the
    tool named: "backward", "double backward", "jvp" ("" when it names none)."""

    derivative: str = ""


@dataclass(frozen=True)
class Tool:
    """One checker as run on a case: ``run(case, dtype)`` -> `Said`. ``names_every_input``: it names
    every wrong input (gradprobe), so it must name exactly the bug's; gradcheck stops at the first, so
    the one it names must be one of them. ``scored``: judged (a control, such as gradcheck alone on a
    double-backward bug, is shown with its plain verdict)."""

    name: str
    run: Callable[..., Said]
    names_every_input: bool = False
    scored: bool = True


@dataclass
class Part:
    """One part's cases, tools and outcomes: outcomes[(case index, dtype, tool name)]."""

    title: str
    framework: str
    cases: list
    tools: list[Tool]
    outcomes: dict = field(default_factory=dict)


def _first_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:160]


# -- torch anchors ---------------------------------------------------------------------------------

_WRT = re.compile(r"with respect to input (\d+)")


def _torch_anchor(check, derivative_of: Callable[[str], str], case, dtype, **options) -> Said:
    """``check(fn, inputs, **options)`` (gradcheck, gradgradcheck): a GradcheckError is a FAIL that
    names the input in its message; `derivative_of(message)` says which derivative it is about."""
    from torch.autograd.gradcheck import GradcheckError

    inputs = case.make_inputs(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not double precision" warnings below float64
        try:
            check(case.fn, inputs, **options)
            return Said("pass")
        except GradcheckError as error:
            message = " ".join(str(error).split())
            found = _WRT.search(message)
            # gradgradcheck's inputs are the function's and then the cotangents: those name no input.
            blamed = (int(found.group(1)),) if found and int(found.group(1)) < len(inputs) else ()
            return Said("FAIL", blamed, message[:100], derivative=derivative_of(message))
        except Exception as error:  # anything else is an error, not a detection
            return Said("ERROR", (), _first_line(error))


def gradcheck(case, dtype, **options) -> Said:
    from torch.autograd import gradcheck as check

    return _torch_anchor(check, lambda m: "jvp" if "forward mode" in m else "backward", case, dtype, **options)


def gradcheck_then_gradgradcheck(case, dtype) -> Said:
    """What a careful torch user runs: gradcheck, and gradgradcheck if it passes."""
    from torch.autograd import gradgradcheck

    first = gradcheck(case, dtype)
    if first.verdict != "pass":
        return first
    return _torch_anchor(gradgradcheck, lambda m: "double backward", case, dtype)


# -- JAX anchor ------------------------------------------------------------------------------------

_JAX_DERIVATIVE = {("rev", 1): "backward", ("rev", 2): "double backward", ("fwd", 1): "jvp", ("fwd", 2): "jvp of jvp"}


def check_grads(case, dtype, orders: tuple[int, ...], modes: tuple[str, ...]) -> Said:
    """``jax.test_util.check_grads`` at each order in `orders` and each mode in `modes` separately,
    lowest order first, so that the failure says which derivative it is about (check_grads' own
    message does not; it never names an argument). Stops at the first order that fails."""
    from jax.test_util import check_grads as check

    args = case.make_inputs(dtype)
    for order in orders:
        failed, message = [], ""
        for mode in modes:
            try:
                check(case.fn, args, order=order, modes=(mode,))
            except AssertionError as error:
                failed.append(_JAX_DERIVATIVE[(mode, order)])
                message = message or " ".join(str(error).split())[:100]
            except Exception as error:
                return Said("ERROR", (), _first_line(error))
        if failed:
            return Said("FAIL", (), message, derivative=", ".join(failed))
    return Said("pass")


# -- gradprobe -------------------------------------------------------------------------------------


def _said(report, inputs: tuple[str, ...]) -> Said:
    """A gradprobe report as a `Said`: the failing tensors (by position, named as the case names
    them: gp.torch says input0...) and the derivative the report is of."""
    if report.mode == "forward":
        derivative = "jvp"
    else:
        derivative = {1: "backward", 2: "double backward"}.get(report.order, f"order {report.order}")
    positions = list(report.tensors)
    # Order 2 also checks the cotangent the backward receives (a tensor `grad_output`, after the
    # inputs): a failure there is said in the detail; the blame is of the case's inputs.
    blamed = tuple(i for i in (positions.index(n) for n in report.failing) if i < len(inputs))
    detail = ", ".join(
        f"{inputs[i] if i < len(inputs) else positions[i]}: {report.tensors[positions[i]].diagnosis}"
        for i in (positions.index(n) for n in report.failing)
    )
    status = {"fail": "FAIL"}.get(report.status, report.status)
    return Said(status, blamed, detail, derivative=derivative if status == "FAIL" else "")


def gradprobe(case, dtype, **options) -> Said:
    """``gp.torch.check`` or ``gp.jax.check`` (by the case's inputs) with `options`; an argument
    error (an unsupported dtype, an option not there yet) is "refused", with gradprobe's message."""
    import torch

    import gradprobe as gp

    inputs = case.make_inputs(dtype)
    check = gp.torch.check if isinstance(inputs[0], torch.Tensor) else gp.jax.check
    try:
        report = check(case.fn, *inputs, **options)
    except gp.GradprobeError as error:  # its own refusal (a dtype it does not take yet), with its message
        return Said("refused", (), _first_line(error))
    except Exception as error:
        return Said("ERROR", (), _first_line(error))
    return _said(report, case.inputs)


# -- the four parts --------------------------------------------------------------------------------


def _tool(name: str, run, scored: bool = True, **options) -> Tool:
    return Tool(name, lambda case, dtype: run(case, dtype, **options), run is gradprobe, scored)


def parts(which: set[str]) -> list[Part]:
    from benchmarks.frameworks import beyond_ops as ops

    every = {
        "second order": [
            Part("Second order, PyTorch", "torch", ops.second_order_torch(), [
                _tool("gradcheck alone", gradcheck, scored=False),
                _tool("gradcheck + gradgradcheck", gradcheck_then_gradgradcheck),
                _tool("gradprobe order=2", gradprobe, order=2),
            ]),
            Part("Second order, JAX", "jax", ops.second_order_jax(), [
                _tool("check_grads order 1, 2 (rev)", check_grads, orders=(1, 2), modes=("rev",)),
                _tool("gradprobe order=2", gradprobe, order=2),
            ]),
        ],
        "forward mode": [
            Part("Forward-mode rules, PyTorch", "torch", ops.forward_mode_torch(), [
                _tool("gradcheck (backward only)", gradcheck),
                _tool("gradcheck check_forward_ad=True", gradcheck, check_forward_ad=True),
                _tool("gradprobe mode='both'", gradprobe, mode="both"),
            ]),
            Part("Forward-mode rules, JAX", "jax", ops.forward_mode_jax(), [
                _tool("check_grads order 1 (fwd, rev)", check_grads, orders=(1,), modes=("fwd", "rev")),
                _tool("check_grads order 1, 2 (fwd, rev)", check_grads, orders=(1, 2), modes=("fwd", "rev")),
                _tool("gradprobe mode='both'", gradprobe, mode="both"),
            ]),
        ],
        "nearby": [
            Part("Bugs a special point hides, PyTorch", "torch", ops.nearby_torch(), [
                _tool("gradcheck", gradcheck),
                _tool("gradcheck fast", gradcheck, fast_mode=True),
                _tool("gradprobe", gradprobe),
                _tool("gradprobe points=3", gradprobe, points=3),
            ]),
            Part("Bugs a special point hides, JAX", "jax", ops.nearby_jax(), [
                _tool("check_grads (rev)", check_grads, orders=(1,), modes=("rev",)),
                _tool("gradprobe", gradprobe),
                _tool("gradprobe points=3", gradprobe, points=3),
            ]),
        ],
        "complex": [
            Part("Complex inputs, PyTorch", "torch", ops.complex_torch(), [
                _tool("gradcheck", gradcheck),
                _tool("gradcheck fast", gradcheck, fast_mode=True),
                _tool("gradprobe", gradprobe),
            ]),
            Part("Complex inputs, JAX", "jax", ops.complex_jax(), [
                _tool("check_grads (rev)", check_grads, orders=(1,), modes=("rev",)),
                _tool("gradprobe", gradprobe),
            ]),
        ],
    }
    return [part for name, group in every.items() if name in which for part in group]


def run(part: Part, repeats: int) -> None:
    import jax
    import jax.numpy as jnp
    import torch

    for dtype in DTYPES:
        # float64 JAX arrays need x64; float32 ones are made without it (gradprobe turns it on for
        # its float64 reference only).
        with jax.enable_x64(dtype == "float64"):
            of_framework = getattr(torch if part.framework == "torch" else jnp, dtype)
            for index, case in enumerate(part.cases):
                for tool in part.tools:
                    part.outcomes[(index, dtype, tool.name)] = _timed(partial(tool.run, case, of_framework), repeats)
                print(".", end="", flush=True, file=sys.stderr)
    print(f" {part.title}", file=sys.stderr)


# -- tables ----------------------------------------------------------------------------------------


def _blame_right(tool: Tool, case, said: Said) -> bool:
    """Whether the inputs and the derivative named (where the tool names them) are the bug's."""
    named = {case.inputs[i] for i in said.blamed}
    culprits = set(case.culprits)
    inputs_right = named == culprits if tool.names_every_input else named <= culprits
    derivative_right = not said.derivative or set(said.derivative.split(", ")) <= set(case.derivative)
    return inputs_right and derivative_right


def _cell(tool: Tool, case, said: Said) -> str:
    blame = ", ".join(case.inputs[i] for i in said.blamed)
    named = "; ".join(part for part in (blame, said.derivative) if part)
    if not tool.scored:
        text = said.verdict + (f" ({named})" if named else "")
    elif said.verdict == "FAIL":
        if case.correct:
            text = "**FALSE ALARM**"
        else:
            text = "caught" + ("" if _blame_right(tool, case, said) else " **wrong blame**")
        text += f" ({named})" if named else ""
    elif said.verdict == "pass":
        text = "pass" if case.correct else "**missed**"
    else:
        text = said.verdict
    if len(said.verdicts_seen) > 1:
        text += f" (varies: {'/'.join(sorted(said.verdicts_seen))})"
    return text


def _both_dtypes(first: str, second: str) -> str:
    return first if first == second else f"64: {first}; 32: {second}"


def _expected(case) -> str:
    if case.correct:
        return "pass"
    return f"{', '.join(case.culprits)}; {' or '.join(case.derivative)}"


def cases_table(part: Part) -> str:
    rows = []
    for index, case in enumerate(part.cases):
        row = {"op": case.op, "variant": case.variant, "expected": _expected(case)}
        for tool in part.tools:
            row[tool.name] = _both_dtypes(*(_cell(tool, case, part.outcomes[(index, d, tool.name)]) for d in DTYPES))
        rows.append(row)
    return markdown(rows)


def summary_table(part: Part) -> str:
    """Per tool and dtype: false alarms, misses, wrong blame, refusals/errors, median ms per check."""
    correct = [i for i, c in enumerate(part.cases) if c.correct]
    buggy = [i for i, c in enumerate(part.cases) if not c.correct]
    rows = []
    for tool in part.tools:
        for dtype in DTYPES:
            said = {i: part.outcomes[(i, dtype, tool.name)] for i in range(len(part.cases))}
            rows.append({
                "tool": tool.name + ("" if tool.scored else " (control, not scored)"),
                "dtype": dtype,
                f"false alarms (of {len(correct)})": str(sum(said[i].verdict == "FAIL" for i in correct)),
                f"caught (of {len(buggy)})": str(sum(said[i].verdict == "FAIL" for i in buggy)),
                "wrong blame": str(sum(
                    said[i].verdict == "FAIL" and not _blame_right(tool, part.cases[i], said[i]) for i in buggy
                )),
                "other verdicts": ", ".join(sorted({s.verdict for s in said.values()} - {"pass", "FAIL"})) or "-",
                "median ms per check": f"{statistics.median(1e3 * statistics.median(s.times) for s in said.values()):.0f}",
            })  # fmt: skip
    return markdown(rows)


def details(part: Part) -> list[str]:
    """gradprobe's diagnoses of what it failed, and every refusal or error with its message (once,
    with the cases it came from); one line per tool, for both dtypes when they agree."""
    lines = []
    for tool in part.tools:
        said_in = {}
        for dtype in DTYPES:
            diagnoses, others = [], {}
            for index, case in enumerate(part.cases):
                said = part.outcomes[(index, dtype, tool.name)]
                if said.verdict == "FAIL" and tool.names_every_input:
                    diagnoses.append(f"{case.op} / {case.variant}: {said.detail}")
                elif said.verdict not in ("pass", "FAIL"):
                    others.setdefault(f"{said.verdict}: {said.detail}", []).append(f"{case.op} / {case.variant}")
            said_in[dtype] = "; ".join(
                [*diagnoses, *(f"{message} ({len(where)} cases: {', '.join(where)})" for message, where in others.items())]
            )
        if said_in["float64"] == said_in["float32"]:
            lines += [f"- {tool.name}, float64 and float32: {said_in['float64']}."] if said_in["float64"] else []
        else:
            lines += [f"- {tool.name}, {dtype}: {said_in[dtype]}." for dtype in DTYPES if said_in[dtype]]
    return lines


#: Why each part's cases are built as they are, and how to read its anchors (printed under its heading).
READING = {
    "Second order, PyTorch": [
        "Every backward is right (`gradcheck alone`, a control, passes them all in float64): only its own",
        "derivative is wrong. gradgradcheck names the first input it finds wrong (for the tanh layer, one of x, W, b),",
        "gradprobe every one. Writing the cases showed the classic trap: a Function that saves an intermediate",
        "computed in `forward` (here `x / n` and `n` for the row normalisation) has no graph through it, so its double",
        "backward is wrong although its backward formula is right; gradgradcheck and gradprobe `order=2` both failed",
        "our first \"correct\" normalisation (gradprobe: `all zeros`). Its backward now recomputes them from x.",
    ],
    "Second order, JAX": [
        "check_grads' order 2 differentiates `x -> vjp(f, x)(f(x))`: it takes the function's own output as the",
        "cotangent. For the row normalisation that output is orthogonal to the Jacobian's range ((I - y y^T) y = 0),",
        "so the VJP it differentiates is zero whatever the double backward does, and it passes both bugs. gradprobe",
        "contracts with a random cotangent and a random w.",
    ],
    "Forward-mode rules, PyTorch": [
        "gradcheck's default checks the backward only, so it passes every wrong jvp; `check_forward_ad=True` checks",
        "both. The Functions use `setup_context` and `generate_vmap_rule = True`, so `torch.func.jvp` runs them.",
    ],
    "Forward-mode rules, JAX": [
        "A `jax.custom_jvp` rule is the jvp, and JAX transposes it for reverse mode: a wrong rule makes both modes",
        "wrong, and naming either is right. gradprobe `mode='both'` checks reverse mode first and shows it (a note says",
        "forward mode failed too).",
    ],
    "Bugs a special point hides, PyTorch": [
        "At x orthogonal and W symmetric the gradient of sum((x W)^2)/2 in W, x^T x W = W, is symmetric, so a",
        "transposed one equals it; at b = 0 a backward that leaves b out is exact. A check at the given point alone",
        "cannot see either (both are `**missed**` by design); `points=3` also checks 2 random points nearby, where",
        "a tensor of zeros is moved by the RMS of all parameters.",
    ],
    "Bugs a special point hides, JAX": ["The same two cases as `jax.custom_vjp` functions."],
    "Complex inputs, PyTorch": [
        "torch's convention: a holomorphic f's backward returns g * conj(f'(z)), and a real loss's gradient is",
        "2 dL/d(conj z) (abs(z)^2 -> 2z). `conjugated` drops (or adds) that conjugate, `wrong factor` a 2.",
    ],
    "Complex inputs, JAX": [
        "JAX's VJP is the transpose without a conjugate: g * f'(z) for a holomorphic f, 2 conj(z) for abs(z)^2.",
    ],
}


def code_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes (work in progress) when it ran."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()

    changed = len(git("status", "--porcelain", "--", "src").splitlines())
    return f"gradprobe at {git('rev-parse', '--short', 'HEAD')}" + (
        f" with uncommitted changes to {changed} files under src/ (work in progress)" if changed else ""
    )


def section(measured: list[Part], repeats: int) -> str:
    lines = [
        TITLE,
        "",
        f"Command: `{COMMAND}` (repeats={repeats}).",
        f"Machine: {machine()}; torch with 1 intra-op thread. Code: {code_state()}.",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}.",
        "",
        "Cases: `benchmarks/frameworks/beyond_ops.py`, each correct and with planted bugs; every check in",
        "float64 and float32 (complex: complex128 and complex64). A cell is the verdict in both dtypes when",
        "they agree, else `64: ...; 32: ...`. `caught (y; double backward)`: the buggy case failed, blaming input",
        "y and that derivative; `**wrong blame**`: the inputs or the derivative named are not the bug's (gradcheck",
        "names the first wrong input it meets, so one of the bug's is right for it; gradprobe must name exactly",
        "the bug's); `**FALSE ALARM**`: a correct case failed; `**missed**`: a buggy case passed; `refused`:",
        "gradprobe raised its own error (message below the table). `expected`: the bug's inputs and derivative.",
        "gradcheck with its defaults fails correct ops in float32 (its float32 false alarms), so its float32",
        "catches say little about the bugs. Times: the median over the part's checks of each check's median",
        "over the repeats.",
        "",
    ]
    for part in measured:
        lines += [f"### {part.title}", "", *READING.get(part.title, []), ""]
        lines += [cases_table(part), "", summary_table(part), ""]
        lines += [*details(part), ""] if details(part) else []
    return "\n".join(lines).rstrip() + "\n"


PARTS = ("second order", "forward mode", "nearby", "complex")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument("--write", metavar="RESULTS.md", help=f"replace the `{TITLE}` section of this file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    measured = parts(set(args.parts.split(",")))
    for part in measured:
        run(part, args.repeats)
    text = section(measured, args.repeats)
    print(text)
    if args.write:
        write_section(Path(args.write), TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
