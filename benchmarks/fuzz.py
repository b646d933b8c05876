"""Fuzz gradprobe's public entry points with arbitrary arrays, structures, callables and options.

    python benchmarks/fuzz.py --seconds 600            # atheris (coverage-guided) when installed
    python benchmarks/fuzz.py --seconds 60 --engine random

Each input (a byte string, from atheris or from a seeded random generator) is decoded into a
call of `gp.check`, `gp.check_vjp`, `gp.check_jacobian` or `gp.assert_gradients`: a parameter
structure (nested dicts, lists and tuples; arrays of any float, integer, bool, complex or object
dtype; empty, 0-d, non-contiguous and read-only arrays; values from subnormal to 1e30, NaN, inf;
Python floats, odd objects), a loss from a menu (smooth, kinked, constant, noisy, overflowing,
returning None, a string, an array, a tuple, NaN, raising, mutating its input, a generator...),
a gradient from a menu (exact, scaled by a known factor, sign-flipped, None, wrong shape or
structure, a generator...) and options (valid and invalid).

A *finding* is any of:

* an exception that is not a `GradprobeError` (an internal traceback), or a `GradprobeError`
  whose message does not name its `argument` in backticks;
* a warning raised inside gradprobe (warnings are errors here, as in the test suite);
* a change to any input (fingerprinted before and after, as in tests/_guard.py);
* a PASS of a nonzero gradient whose stated resolution is not below 1, or a PASS for a gradient
  whose known relative error is larger than the stated resolution (a wrong PASS);
* a FAIL for an exact gradient of a smooth loss (a false alarm).

Findings are grouped by kind and place and written, with a reproducer (the input's bytes in hex),
to the JSON file given by --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _guard import changes, fingerprint  # noqa: E402


class Data:
    """Decodes a byte string into choices (atheris's FuzzedDataProvider, but engine-independent).
    Once the bytes run out every choice is the first option, so every input is a valid program."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def int(self, low: int, high: int) -> int:
        span = high - low + 1
        value = 0
        for _ in range(1 if span <= 256 else 4):
            value = value * 256 + self.byte()
        return low + value % span

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]

    def flag(self) -> bool:
        return bool(self.byte() & 1)


# -- parameters ------------------------------------------------------------------------------

MAGNITUDES = [1.0, 1.0, 1.0, 1e-3, 1e3, 1e-30, 1e30, 1e-310, 1e-160, 1e150, 0.0]
FLOAT_DTYPES = [np.float64, np.float64, np.float32, np.float16]
ODD_DTYPES = [np.int64, np.bool_, np.complex128, object, np.longdouble, np.uint8]


def array(data: Data, odd: bool):
    shape = tuple(data.int(0 if odd else 1, 3) for _ in range(data.int(0, 2)))
    dtype = data.pick(ODD_DTYPES) if odd and data.int(0, 7) == 0 else data.pick(FLOAT_DTYPES)
    rng = np.random.default_rng(data.int(0, 2**16))
    values = np.asarray(rng.uniform(-2, 2, shape) * data.pick(MAGNITUDES))
    if odd and values.size and data.int(0, 15) == 0:
        values.flat[data.int(0, values.size - 1)] = data.pick([np.nan, np.inf, -np.inf])
    with np.errstate(all="ignore"):
        out = values.astype(dtype) if dtype is not object else values.astype(object)
    form = data.int(0, 7)
    if form == 1 and out.ndim >= 1:  # non-contiguous
        out = np.repeat(out, 2, axis=0)[::2]
    elif form == 2:
        out = np.array(out)
        out.setflags(write=False)
    elif form == 3 and out.ndim == 2:
        out = np.asfortranarray(out)
    return out


def leaf(data: Data, odd: bool):
    kind = data.int(0, 9)
    if kind == 0:
        return float(data.pick([0.5, -1.25, 3.0, 1e-30, 1e30]))
    if kind == 1 and odd:
        return data.pick([None, "x", True, 3, (v for v in (1.0,)), {1.0}, np.float32(0.5), b"\x00"])
    return array(data, odd)


def structure(data: Data, odd: bool, depth: int = 0):
    kind = data.int(0, 5) if depth < 3 else 0
    if kind <= 2:
        return leaf(data, odd)
    n = data.int(0 if odd else 1, 3)
    children = [structure(data, odd, depth + 1) for _ in range(n)]
    if kind == 3:
        keys = [data.pick(["W", "b", "dW", "x", 0, 1, "a.b"]) for _ in range(n)]
        if not odd:  # distinct names; odd structures may repeat or clash ("1" and 1, "a.b")
            keys = [f"{k}{i}" for i, k in enumerate(keys)]
        return dict(zip(keys, children))
    if kind == 4:
        return children
    return tuple(children)


# -- losses and gradients ----------------------------------------------------------------------


def leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from leaves(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from leaves(v)
    else:
        yield tree


def map_tree(tree, function):
    if isinstance(tree, dict):
        return {k: map_tree(v, function) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [map_tree(v, function) for v in tree]
        return items if isinstance(tree, list) else tuple(items)
    return function(tree)


def as64(x):
    return np.asarray(x, dtype=np.float64)


# Smooth losses f = sum over leaves of phi(x) with the elementwise derivative phi'.
SMOOTH = {
    "square": (lambda x: x * x, lambda x: 2 * x),
    "cube": (lambda x: x**3, lambda x: 3 * x * x),
    "sin": (np.sin, np.cos),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "exp-safe": (lambda x: np.exp(np.tanh(x)), lambda x: np.exp(np.tanh(x)) * (1 - np.tanh(x) ** 2)),
    "linear": (lambda x: 3 * x, lambda x: np.full_like(x, 3.0)),
    "log1p-square": (lambda x: np.log1p(x * x), lambda x: 2 * x / (1 + x * x)),
}


def smooth_loss(name):
    phi, _ = SMOOTH[name]

    def loss(p):
        return float(sum(np.sum(phi(as64(x))) for x in leaves(p)))

    return loss


def smooth_grad(name, factor=1.0):
    _, dphi = SMOOTH[name]

    def grad(p):
        return map_tree(p, lambda x: factor * dphi(as64(x)) if np.ndim(x) else float(factor * dphi(as64(x))))

    return grad


def loss_menu(data: Data, calls: list):
    kind = data.int(0, 19)
    name = data.pick(sorted(SMOOTH))
    base = smooth_loss(name)
    if kind < 10:
        return f"smooth:{name}", base, True
    options = {
        10: ("none", lambda p: None),
        11: ("string", lambda p: "1.0"),
        12: ("array", lambda p: np.ones(3)),
        13: ("tuple", lambda p: (base(p), None)),
        14: ("nan", lambda p: float("nan")),
        15: ("raises", lambda p: 1 / 0),
        16: ("raises-midway", lambda p: base(p) if len(calls) < 5 else 1 / 0),
        17: ("mutates-input", lambda p: (map_tree(p, lambda x: x.fill(7.0) if isinstance(x, np.ndarray) and x.flags.writeable else None), base(p))[1]),
        18: ("abs-kink", lambda p: float(sum(np.sum(np.abs(as64(x))) for x in leaves(p)))),
        19: ("generator", lambda p: (v for v in [1.0])),
    }
    label, function = options[kind]
    counted = lambda p: (calls.append(1), function(p))[1]  # noqa: E731
    return label, counted, False


def grad_menu(data: Data, loss_label: str):
    kind = data.int(0, 11)
    name = loss_label.split(":")[1] if loss_label.startswith("smooth:") else "square"
    if kind < 4:
        return "exact", smooth_grad(name), 0.0
    if kind < 7:
        factor = data.pick([2.0, -1.0, 1.5, 0.0, 1.01])
        return f"scaled:{factor}", smooth_grad(name, factor), abs(factor - 1.0)
    options = {
        7: ("none", lambda p: None),
        8: ("wrong-shape", lambda p: map_tree(p, lambda x: np.zeros(np.size(x) + 1))),
        9: ("list-for-structure", lambda p: [np.zeros(3)]),
        10: ("generator", lambda p: (v for v in [1.0])),
        11: ("raises", lambda p: {}[0]),
    }
    label, function = options[kind]
    return label, function, None


def options_menu(data: Data):
    options = {}
    if data.flag():
        options["method"] = data.pick(["auto", "central", "richardson", "complex", "forward?"])
    if data.flag():
        options["strategy"] = data.pick(["auto", "full", "directional", "sample", "fast?"])
    if data.flag():
        options["seed"] = data.pick([0, 1, 12345, -1, 2.5])
    if data.int(0, 3) == 0:
        options["rtol"] = data.pick([None, 1e-3, 0.0, -1.0, float("nan")])
    return options


# -- one input -----------------------------------------------------------------------------------


class Finding(Exception):
    """`group` says which findings are the same problem (kind and place, or kind and menu items)."""

    def __init__(self, kind: str, detail: str, group: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.group = kind, detail, f"{kind} | {group}"


def place(error: BaseException) -> str:
    """file:line of the innermost gradprobe frame (else the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "gradprobe" in f.filename and "benchmarks" not in f.filename]
    frame = (ours or frames or [None])[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"


LAST_CASE: dict = {}


def one_input(raw: bytes) -> None:
    import gradprobe as gp

    data = Data(raw)
    odd = data.int(0, 3) == 0
    params = structure(data, odd)
    calls: list = []
    loss_label, loss, smooth = loss_menu(data, calls)
    grad_label, grad, known_error = grad_menu(data, loss_label)
    options = options_menu(data)
    entry = data.pick(["check", "check", "check", "check_vjp", "check_jacobian", "assert_gradients"])
    if entry == "check_vjp":
        call = lambda: gp.check_vjp(lambda x: np.atleast_1d(loss(x)), lambda x, v: map_tree(grad(x), lambda g: g), params, **options)  # noqa: E731
        known_error = None  # the fuzzed grad is not a VJP of this f
    elif entry == "check_jacobian":
        call = lambda: gp.check_jacobian(lambda x: np.atleast_1d(loss(x)), lambda x: np.asarray(grad(x))[None], params, **options)  # noqa: E731
        known_error = None
    elif entry == "assert_gradients":
        call = lambda: gp.assert_gradients(loss, grad, params, **options)  # noqa: E731
    else:
        call = lambda: gp.check(loss, grad, params, **options)  # noqa: E731
    global LAST_CASE
    LAST_CASE = {"entry": entry, "loss": loss_label, "grad": grad_label, "options": options, "params": params}
    before = fingerprint((params,), {})
    report = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            report = call()
    except gp.GradientMismatch as mismatch:
        report = mismatch.report
    except gp.GradprobeError as error:
        message = str(error)
        if error.argument is None or f"`{error.argument}`" not in message:
            raise Finding("error-without-argument", f"{type(error).__name__} at {place(error)}: {message[:200]}", place(error)) from error
    except Warning as warning:  # the user's warnings come wrapped in UserFunctionError
        raise Finding("internal-warning", f"{type(warning).__name__} at {place(warning)}: {warning}", place(warning)) from warning
    except Exception as error:
        raise Finding("internal-exception", f"{type(error).__name__} at {place(error)}: {str(error)[:200]}", place(error)) from error
    if changes(before, fingerprint((params,), {})):
        raise Finding("mutation", f"{entry} changed its params ({loss_label}, {grad_label})", f"{entry} {loss_label}")
    if report is None:
        return
    if report.status == "pass" and not (0 <= report.resolution < 1) and _gradient_norm(grad, params) > 0:
        raise Finding("vacuous-pass", f"PASS at resolution {report.resolution} ({loss_label}, {grad_label})", loss_label)
    if smooth and known_error is not None:
        if report.status == "pass" and known_error > report.resolution and _gradient_norm(grad, params) > 0:
            raise Finding("wrong-pass", f"{grad_label} passed at resolution {report.resolution:.2e} ({loss_label})", f"{loss_label} {grad_label}")
        if report.status == "fail" and known_error == 0.0:
            raise Finding("false-alarm", f"exact gradient failed ({loss_label}): {[(n, t.status) for n, t in report.tensors.items()]}", loss_label)


def _gradient_norm(grad, params) -> float:
    try:
        return float(np.sqrt(sum(np.sum(as64(g) ** 2) for g in leaves(grad(params)))))
    except Exception:
        return 0.0


# -- engines --------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, out: Path, seconds: float, engine: str) -> None:
        self.out, self.seconds, self.engine = out, seconds, engine
        self.start = time.monotonic()
        self.runs = 0
        self.findings: dict[str, dict] = {}

    def __call__(self, raw: bytes) -> None:
        if time.monotonic() - self.start > self.seconds:
            self.finish()
        self.runs += 1
        try:
            one_input(raw)
        except Finding as finding:
            entry = self.findings.setdefault(
                finding.group, {"group": finding.group, "detail": finding.detail, "count": 0, "input": raw.hex()}
            )
            entry["count"] += 1
            if entry["count"] == 1:
                print(f"[{self.runs}] {finding}", flush=True)
                self.save()

    def save(self) -> None:
        summary = {
            "engine": self.engine,
            "seconds": round(time.monotonic() - self.start, 1),
            "runs": self.runs,
            "findings": sorted(self.findings.values(), key=lambda f: -f["count"]),
        }
        self.out.write_text(json.dumps(summary, indent=2))

    def finish(self) -> None:
        self.save()
        print(f"fuzz: {self.runs} inputs in {time.monotonic() - self.start:.0f} s, {len(self.findings)} distinct findings -> {self.out}")
        sys.stdout.flush()
        os._exit(0)  # libFuzzer's loop does not return


def replay(hex_input: str) -> None:
    """Run one recorded input and show its traceback."""
    try:
        one_input(bytes.fromhex(hex_input))
        print("no finding")
    except Finding as finding:
        traceback.print_exception(finding.__cause__ or finding)
        print(finding)
    with np.printoptions(precision=17):
        for key, value in LAST_CASE.items():
            print(f"{key}: {value!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--engine", choices=("atheris", "random"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings.json"))
    parser.add_argument("--replay", metavar="HEX", help="run one recorded input")
    args, rest = parser.parse_known_args()
    if args.replay:
        replay(args.replay)
        return
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "random"
    recorder = Recorder(args.out, args.seconds, engine)
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["gradprobe"]):
            import gradprobe  # noqa: F401
            import gradprobe.strategies._check  # noqa: F401
        atheris.Setup([sys.argv[0], f"-seed={args.seed + 1}", "-max_len=256", "-rss_limit_mb=8192", *rest], recorder)
        atheris.Fuzz()
    rng = random.Random(args.seed)
    while True:
        recorder(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 256))))


if __name__ == "__main__":
    main()
