"""Command line: `gradprobe demo` and `gradprobe check FILE.py:NAME`.

``gradprobe check path/to/file.py:NAME`` runs the file (as a script would run, with its folder
on ``sys.path``), calls ``NAME()`` with no arguments, which must return a problem in one of the
`FORMS` (numpy's ``(loss, grad, params)``, or a dict naming PyTorch or JAX), and checks it. Exit
codes: 0 pass, 1 fail, 2 inconclusive, 3 usage or input error. When the user's code raises (at
import, in ``NAME()`` or in ``loss``/``grad``), the traceback printed is the user's, with
gradprobe's own frames left out.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ._demo import run_demo

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 2}
USAGE_ERROR = 3
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # gradprobe/

#: What NAME() may return, and the check each form goes to: numpy's triple, or a dict whose key
#: names the framework and holds the function, next to the tuple of its inputs.
DICT_FORMS = "{'torch': fn, 'inputs': (x, ...)} or {'jax': fn, 'args': (x, ...)}"
FORMS = f"(loss, grad, params), {DICT_FORMS}"
#: For each framework's key: its name, and the key of the function's inputs (as `check` calls them).
_FRAMEWORKS = {"torch": ("PyTorch", "inputs"), "jax": ("JAX", "args")}

CHECK_DESCRIPTION = """\
Check the gradient defined in your own file.

TARGET is path/to/file.py:NAME, where NAME is a function of no arguments returning
(loss, grad, params): loss(params) -> float, grad(params) -> the gradient with the structure of
params (dict keys "W" or "dW"), params the point to check at, e.g.

    def problem():
        params = {"W": np.random.default_rng(0).standard_normal((3, 4))}
        return (lambda p: np.sum(np.tanh(p["W"])),
                lambda p: {"W": 1 - np.tanh(p["W"]) ** 2},
                params)

For PyTorch, NAME returns {"torch": fn, "inputs": (x, ...)}, checked as
gp.torch.check(fn, *inputs) (the tensors with requires_grad=True are checked); for JAX,
{"jax": fn, "args": (x, ...)}, checked as gp.jax.check(fn, *args), e.g.

    def layer():
        x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
        return {"torch": MyFunction.apply, "inputs": (x,)}

exit status: 0 pass, 1 fail, 2 inconclusive, 3 usage or input error (errors raised by your
code print your traceback).
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with `USAGE_ERROR` (argparse's own default is 2, our 'inconclusive')."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


class _InputError(Exception):
    """The user's file or function could not be used; the message (and traceback) say why."""

    def __init__(self, message: str, user_traceback: str = "") -> None:
        super().__init__(message)
        self.user_traceback = user_traceback


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gradprobe",
        description="Check a hand-written gradient against numerical derivatives, and say where and how it is wrong.",
    )
    parser.add_argument("--version", action="version", version=f"gradprobe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="check the deeplearning.ai assignment's network (buggy and fixed)",
        description=(
            "Run the deeplearning.ai 'Gradient Checking' assignment through gradprobe: the 1-D check "
            "J = theta*x, the 3-layer network whose backprop has two planted bugs (dW2 doubled, db1 "
            "with 4/m), and the fixed network. Prints the verdict and a per-tensor table for each."
        ),
    )
    _color_option(demo)
    check = commands.add_parser(
        "check",
        help="check the (loss, grad, params), PyTorch or JAX problem returned by a function in your file",
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("target", metavar="TARGET", help="path/to/file.py:NAME")
    check.add_argument("--strategy", default="auto", help="probing strategy (default: auto)")
    check.add_argument("--method", default="auto", help="finite-difference method (default: auto)")
    check.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    check.add_argument("--rtol", type=float, default=None, help="relative error to accept on top of the error bars")
    check.add_argument("--batch-size", type=int, default=None, help="batch size m, to name factors of 1/m")
    check.add_argument(
        "--budget",
        type=_budget,
        default=None,
        help="cap on the work: loss evaluations (2000) or a duration (30s, 500ms, 5min, 1h); tensors it leaves "
        "unchecked are inconclusive (default: no cap)",
    )
    check.add_argument(
        "--confidence",
        type=_confidence,
        default=None,
        help="random directions and samples catch the error size the report guarantees with this probability "
        "(default: 0.999)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON (report.schema.json) instead")
    check.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report to FILE")
    _color_option(check)
    return parser


def _budget(text: str) -> int | str:
    """``--budget``: digits are a number of loss evaluations, anything else a duration."""
    from ..strategies._budget import parse_budget
    from .._errors import GradprobeError

    budget: int | str = int(text) if text.strip().isdigit() else text
    try:
        parse_budget(budget)
    except GradprobeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of loss evaluations (e.g. 2000) or a duration (e.g. 30s, 500ms, 5min, 1h), "
            f"got {text!r}"
        ) from None
    return budget


def _confidence(text: str) -> float:
    try:
        confidence = float(text)
    except ValueError:
        confidence = float("nan")
    if not 0 < confidence < 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1 (e.g. 0.999), got {text!r}")
    return confidence


def _color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour and tables (needs rich): auto = only on a terminal (default)",
    )


def _ours(filename: str) -> bool:
    """Frames to hide from the user: gradprobe's own and the import machinery's."""
    return filename.startswith(_PACKAGE_DIR) or filename.startswith("<frozen importlib")


def user_traceback(error: BaseException) -> str:
    """`error` formatted like Python would, minus the leading frames of gradprobe and importlib."""
    tb = error.__traceback__
    while tb is not None and _ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def _load(target: str) -> Any:
    """Run the file and call NAME(); return what it returned."""
    file, sep, name = target.rpartition(":")
    if not sep or not file or not name:
        raise _InputError(f"TARGET must look like path/to/file.py:NAME, got {target!r}.")
    path = Path(file)
    if not path.is_file():
        raise _InputError(f"no such file: {file!r} (from TARGET {target!r}).")
    module_name = f"_gradprobe_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise _InputError(f"cannot load {file!r} as Python; TARGET must be path/to/file.py:NAME.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so that pickling the user's functions (process pools) works
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # the file's own imports resolve as when run as a script
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        raise _InputError(f"{file} raised {type(error).__name__} while loading.", user_traceback(error)) from None
    function = getattr(module, name, None)
    if function is None:
        defined = sorted(
            key
            for key, value in vars(module).items()
            if callable(value) and not key.startswith("_") and getattr(value, "__module__", None) == module_name
        )
        raise _InputError(f"{file} defines no {name!r}; its functions: {', '.join(defined) or 'none'}.")
    if not callable(function):
        raise _InputError(f"{file}:{name} is a {type(function).__name__}, not a function returning {FORMS}.")
    try:
        return function()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        raise _InputError(f"{file}:{name}() raised {type(error).__name__}.", user_traceback(error)) from None


def _problem(result: Any, where: str) -> Callable[..., Any]:
    """What ``NAME()`` returned (`where` names it), as a function of the check's options."""
    if isinstance(result, (tuple, list)) and len(result) == 3:
        loss, grad, params = result
        from ..strategies._check import check

        return lambda **options: check(loss, grad, params, **options)
    if not isinstance(result, dict):
        kind = type(result).__name__
        got = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" + (f" of {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise _InputError(f"{where} must return {FORMS}; it returned {got}.")
    frameworks = [key for key in _FRAMEWORKS if key in result]
    if len(frameworks) != 1:
        raise _InputError(
            f"{where} returned a dict with keys {sorted(map(str, result))}; a problem as a dict is {DICT_FORMS}: "
            "exactly one of 'torch' and 'jax', holding the function to check."
        )
    framework = frameworks[0]
    label, inputs_key = _FRAMEWORKS[framework]
    form = f"{{{framework!r}: fn, {inputs_key!r}: (x, ...)}}"
    unknown = sorted(map(str, set(result) - {framework, inputs_key}))
    if unknown:
        raise _InputError(f"{where} returned a dict with unknown keys {unknown}; a {label} problem is {form}.")
    if inputs_key not in result:
        raise _InputError(f"{where} returned no {inputs_key!r}; a {label} problem is {form}.")
    fn, inputs = result[framework], result[inputs_key]
    if not callable(fn):
        raise _InputError(f"{where}[{framework!r}] must be the function to check, got a {type(fn).__name__}.")
    if not isinstance(inputs, (tuple, list)):
        raise _InputError(
            f"{where}[{inputs_key!r}] must be a tuple of fn's {inputs_key}, got a {type(inputs).__name__}; "
            "write (x,) for a single one."
        )
    try:
        module = importlib.import_module(f"gradprobe.{framework}")
    except ModuleNotFoundError as error:
        raise _InputError(str(error)) from None
    return lambda **options: module.check(fn, *inputs, **options)


def _reproduce(args: argparse.Namespace, report: Any) -> str:
    words = ["gradprobe", "check", args.target, "--strategy", report.strategy, "--method", report.method]
    words += ["--seed", str(report.seed)]
    if args.rtol is not None:
        words += ["--rtol", repr(args.rtol)]
    if args.batch_size is not None:
        words += ["--batch-size", str(args.batch_size)]
    if args.budget is not None:
        words += ["--budget", str(args.budget)]
    if args.confidence is not None:
        words += ["--confidence", repr(args.confidence)]
    return shlex.join(words)


def _run_check(args: argparse.Namespace) -> int:
    from .._errors import GradprobeError, UserFunctionError
    from ..report._terminal import show

    # Only the options given are passed: each check keeps its own defaults, and a framework check's
    # `reproduce` names only what was chosen.
    chosen = {
        "strategy": None if args.strategy == "auto" else args.strategy,
        "method": None if args.method == "auto" else args.method,
        "rtol": args.rtol,
        "batch_size": args.batch_size,
        "budget": args.budget,
        "confidence": args.confidence,
    }
    options = {"seed": args.seed, **{name: value for name, value in chosen.items() if value is not None}}
    try:
        check = _problem(_load(args.target), f"{args.target}()")
        report = check(**options)
    except _InputError as error:
        if error.user_traceback:
            sys.stderr.write(error.user_traceback)
        print(f"gradprobe: {error}", file=sys.stderr)
        return USAGE_ERROR
    except UserFunctionError as error:
        if error.__cause__ is not None:
            sys.stderr.write(user_traceback(error.__cause__))
        print(f"gradprobe: {error}", file=sys.stderr)
        return USAGE_ERROR
    except GradprobeError as error:
        print(f"gradprobe: {error}", file=sys.stderr)
        return USAGE_ERROR
    reproduce = _reproduce(args, report)
    if args.html:
        from ..report._html import write_html

        try:
            write_html(report, args.html, reproduce=reproduce)
        except OSError as error:
            print(f"gradprobe: cannot write the HTML report to {args.html!r}: {error}", file=sys.stderr)
            return USAGE_ERROR
        print(f"gradprobe: HTML report written to {args.html}", file=sys.stderr)
    try:
        if args.json:
            print(report.to_json(indent=2))
        else:
            show(report, sys.stdout, reproduce=reproduce, color=args.color)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left early (`| head`); the verdict still decides the exit status.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_CODES[report.status]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `gradprobe demo | head`: the reader left early, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    if args.command == "demo":
        return 1 if run_demo(color=args.color) else 0
    if args.command == "check":
        return _run_check(args)
    parser.print_help()
    return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
