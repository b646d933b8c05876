"""gradprobe's framework adapters on a GPU: one short, self-contained run.

Run from the repository root with the machine's own Python (gradprobe need not be installed):

    python3 benchmarks/frameworks/gpu_check.py                 # on cuda
    python3 benchmarks/frameworks/gpu_check.py --device cpu    # the same checks on the CPU

What it checks, each case caught and printed on its own so that one failure never hides the rest:

* `gp.torch.check` on custom autograd Functions from `torch_ops`, inputs on the device, in float32
  and float64: the correct op passes, the buggy one fails and blames the right input, and every
  tensor the function receives is on the device in the inputs' dtype;
* ``oracle="forward"`` on the device (a Function with a `jvp`, batched with `torch.func.vmap`);
* `gp.torch.check_module` on a small MLP on the device: the verdict, every parameter and buffer
  restored bit for bit and still on the device (same objects), the module's forward seeing only
  device tensors;
* `gp.jax.check` on two `jax_ops` custom_vjp ops with the arrays on JAX's default device, in
  float32 and (with x64) float64.

A compact table is printed and, when the environment variable OUT names a folder, written to
``$OUT/gpu.txt``. The exit status is 0 when every expectation holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))  # gradprobe from this checkout, installed or not
sys.path.insert(0, ROOT)  # benchmarks.frameworks.*

TORCH_OPS = ("linear", "layer_norm", "attention_softmax", "logsumexp", "cumprod")
JAX_OPS = ("layer_norm", "matmul_bias")  # matmul_bias: float32 dots may run in TF32 on a GPU

rows: list[tuple[str, str, str, str, str, str]] = []  # case, dtype, expected, got, seconds, how


def record(case: str, dtype: str, expected: str, run) -> None:
    """Run one case; `run()` returns the outcome, or (outcome, how it ran)."""
    start = time.perf_counter()
    how = ""
    try:
        got = run()
        if isinstance(got, tuple):
            got, how = got
    except Exception as error:  # one broken case must not hide the others
        got = f"ERROR {type(error).__name__}: {str(error).splitlines()[0][:90] if str(error) else ''}"
        traceback.print_exc(limit=3, file=sys.stderr)
    rows.append((case, dtype, expected, got, f"{time.perf_counter() - start:.2f}", how))
    print(f"  {case:34} {dtype:8} expected {expected:24} got {got}  {how}", flush=True)


def how(report) -> str:
    """How the check ran: batched with vmap or not, loss evaluations, resolution."""
    vmap = "vmap" if report.options.get("vectorized") else "loop"
    return f"{vmap}, {report.nfev} evals, method {report.method}, resolution {report.resolution:.1e}"


# -- torch -----------------------------------------------------------------------------------------


def torch_cases(device_name: str) -> None:
    import torch

    import gradprobe as gp
    from benchmarks.frameworks import torch_ops

    device = torch.device(device_name)
    ops = {op.name: op for op in torch_ops.ops()}

    def on_device(op, dtype):
        return tuple(t.detach().to(device).requires_grad_(t.requires_grad) for t in op.make_inputs(dtype))

    for dtype in (torch.float32, torch.float64):
        label = str(dtype).removeprefix("torch.")
        for name in TORCH_OPS:
            op = ops[name]

            def correct(op=op, dtype=dtype):
                seen = set()

                def watched(*inputs):
                    seen.update((t.device.type, t.dtype) for t in inputs if isinstance(t, torch.Tensor))
                    return op.fn(*inputs)

                report = gp.torch.check(watched, *on_device(op, dtype))
                assert seen == {(device.type, dtype)}, f"fn saw {sorted(map(str, seen))}"
                return report.status, how(report)

            def buggy(op=op, dtype=dtype):
                report = gp.torch.check(op.buggy_fn, *on_device(op, dtype))
                names = list(report.tensors)
                blamed = [names.index(n) for n in report.failing]
                return report.status + ("" if report.status != "fail" else f" input {blamed}"), how(report)

            record(f"torch {name} correct", label, "pass", correct)
            record(f"torch {name} buggy", label, f"fail input [{op.buggy_input}]", buggy)

    class Softplus(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return torch.nn.functional.softplus(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            return g * torch.sigmoid(ctx.saved_tensors[0])

        @staticmethod
        def jvp(ctx, t):
            return t * torch.sigmoid(ctx.saved_tensors[0])

    class SoftplusOff(Softplus):
        @staticmethod
        def backward(ctx, g):
            return g * torch.sigmoid(ctx.saved_tensors[0]) * (1 + 1e-4)

    x = torch.linspace(-3, 3, 64, device=device).reshape(8, 8).requires_grad_()
    def forward(function):
        report = gp.torch.check(function.apply, x, oracle="forward")
        return report.status, how(report)

    record("torch oracle=forward correct", "float32", "pass", lambda: forward(Softplus))
    record("torch oracle=forward 1e-4 off", "float32", "fail", lambda: forward(SoftplusOff))

    def module_case(dtype):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3)
        ).to(device=device, dtype=dtype).eval()
        x = torch.randn(32, 8, device=device, dtype=dtype)
        y = torch.randint(0, 3, (32,), device=device)
        before = {n: (t, t.detach().clone()) for n, t in [*model.named_parameters(), *model.named_buffers()]}
        seen = set()

        def loss_fn(output, target):
            seen.add(output.device.type)
            return torch.nn.functional.cross_entropy(output, target)

        report = gp.torch.check_module(model, loss_fn, x, y)
        after = dict([*model.named_parameters(), *model.named_buffers()])
        for n, (obj, copy) in before.items():
            assert after[n] is obj, f"{n} replaced"
            assert obj.device.type == device.type, f"{n} moved to {obj.device}"
            assert torch.equal(obj.detach().view(torch.uint8), copy.view(torch.uint8)), f"{n} changed"
        assert seen == {device.type}, f"loss saw {seen}"
        return f"{report.status} ({len(report.tensors)} tensors, restored)", how(report)

    for dtype in (torch.float32, torch.float64):
        record("torch check_module MLP", str(dtype).removeprefix("torch."), "pass (6 tensors, restored)", lambda d=dtype: module_case(d))


# -- jax -------------------------------------------------------------------------------------------


def jax_cases(device_name: str) -> None:
    import jax

    import gradprobe as gp

    try:
        enable_x64 = jax.enable_x64
    except AttributeError:
        from jax.experimental import enable_x64
    platform_wanted = "gpu" if device_name == "cuda" else "cpu"
    devices = [d for d in jax.devices() if d.platform == platform_wanted]
    if not devices:
        record("jax devices", "-", platform_wanted, lambda: f"only {jax.devices()}")
        return
    import jax.numpy as jnp

    from benchmarks.frameworks import jax_ops

    ops = {op.name: op for op in jax_ops.ops()}
    for label, x64, dtype in (("float32", False, jnp.float32), ("float64", True, jnp.float64)):
        for name in JAX_OPS:
            op = ops[name]

            def run(fn, op=op, x64=x64, dtype=dtype):
                with enable_x64(x64):
                    args = tuple(jax.device_put(a, devices[0]) for a in op.make_args(dtype))
                    assert all(a.dtype == dtype for a in args), [a.dtype for a in args]
                    report = gp.jax.check(fn, *args)
                    names = list(report.tensors)
                    blamed = [names.index(n) for n in report.failing]
                    return report.status + ("" if report.status != "fail" else f" arg {blamed}"), how(report)

            record(f"jax {name} correct", label, "pass", lambda op=op, run=run: run(op.fn))
            record(f"jax {name} buggy", label, f"fail arg [{op.buggy_arg}]", lambda op=op, run=run: run(op.buggy_fn))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    header = [f"gradprobe GPU check, device={args.device}, Python {platform.python_version()}, {platform.platform()}"]
    try:
        import torch

        header.append(f"torch {torch.__version__}, cuda available {torch.cuda.is_available()}"
                      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    except Exception as error:
        header.append(f"torch unavailable: {error}")
    try:
        import jax

        header.append(f"jax {jax.__version__}, devices {jax.devices()}")
    except Exception as error:
        header.append(f"jax unavailable: {error}")
    print("\n".join(header), flush=True)
    record("import gradprobe", "-", "ok", lambda: (__import__("gradprobe"), "ok")[1])
    if args.device == "cpu":
        try:
            import torch

            torch.set_num_threads(1)  # small tensors: threads only contend on a shared machine
        except ImportError:
            pass

    def torch_device() -> str:
        import torch

        return "ok" if args.device == "cpu" or torch.cuda.is_available() else "torch.cuda.is_available() is False"

    record(f"torch device {args.device}", "-", "ok", torch_device)
    if rows[-1][3] == "ok":
        try:
            torch_cases(args.device)
        except Exception as error:  # an import or setup failure of the whole section
            record("torch section", "-", "runs", lambda error=error: f"ERROR {type(error).__name__}: {error}")
    try:
        jax_cases(args.device)
    except Exception as error:
        record("jax section", "-", "runs", lambda error=error: f"ERROR {type(error).__name__}: {error}")
    ok = all(got == expected for _, _, expected, got, _, _ in rows)
    titles = ("case", "dtype", "expected", "got", "s", "how")
    widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(6)]
    table = [
        "  ".join(h.ljust(w) for h, w in zip(titles, widths)).rstrip(),
        *(("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + ("" if r[3] == r[2] else "  <-- MISMATCH")) for r in rows),
        f"{sum(r[3] == r[2] for r in rows)} of {len(rows)} as expected; total {time.perf_counter() - started:.1f} s; "
        + ("ALL OK" if ok else "SOME MISMATCHES"),
    ]
    text = "\n".join([*header, "", *table]) + "\n"
    print("\n" + "\n".join(table), flush=True)
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)
        with open(os.path.join(os.environ["OUT"], "gpu.txt"), "w") as handle:
            handle.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
