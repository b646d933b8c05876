"""Verify the framework benchmark cases against the frameworks' own checkers.

Run from the repository root:

    python -m benchmarks.frameworks.verify_ops            # torch + jax
    python -m benchmarks.frameworks.verify_ops --torch    # torch only
    python -m benchmarks.frameworks.verify_ops --jax      # jax only

Checks (exit status 1 if any *expectation* fails):

torch (``torch.autograd.gradcheck``, default settings):
  * float64: every correct op passes, every buggy op fails;
  * the buggy op's gradient differs from the correct one only in
    ``buggy_input`` (random cotangent, float64);
  * float32: outcome only printed (false alarms are expected: gradcheck's
    eps=1e-6 is too small for float32), not asserted;
  * for nondeterministic ops: forward jitter over repeated calls is printed and
    gradcheck is also run with ``nondet_tol``;
  * the extra cases (``torch_ops.extra_cases()``): gradcheck's float64 outcome at
    exact max-pool ties (even split passes, argmax routing fails: its central
    difference sees 1/2), and the float32-slope leaky ReLU: its float64
    gradient is 1.5e-8 relative off autograd's, while the fixed
    ``leaky_relu_near_kink`` matches autograd to the last bit.

jax (``jax.test_util.check_grads(fn, args, order=1, modes=["rev"])``):
  * float64 (x64 enabled here, not in the library): correct passes, buggy fails;
  * buggy cotangent differs only in ``buggy_arg``;
  * float32: outcome only printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

if __package__ in (None, ""):  # allow `python benchmarks/frameworks/verify_ops.py`
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def _short(exc: BaseException, n: int = 70) -> str:
    msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return msg if len(msg) <= n else msg[: n - 3] + "..."


# --------------------------------------------------------------------------
# torch


def _torch_gradcheck(fn, inputs, **kw):
    import torch
    from torch.autograd.gradcheck import GradcheckError

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 "not double precision" warning
        try:
            ok = torch.autograd.gradcheck(fn, inputs, **kw)
            res = ("pass" if ok else "FAIL", "")
        except GradcheckError as e:
            res = ("FAIL", _short(e, 200))
        except Exception as e:  # noqa: BLE001 -- anything else is an error, not a detection
            res = ("ERROR", _short(e, 200))
    return res + (time.perf_counter() - t0,)


def _gc_ratio(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Worst-case max |ana - num| / (atol + rtol*|num|) over all Jacobian entries,
    with gradcheck's central differences (eps) and default tolerances; > 1 means
    gradcheck's allclose fails.  Computed in the inputs' own dtype."""
    import torch

    inputs = tuple(inputs)
    with torch.no_grad():
        y0 = fn(*inputs)
    worst = 0.0
    for k, x in enumerate(inputs):
        if not (isinstance(x, torch.Tensor) and x.requires_grad):
            continue
        # analytical: one backward per output element
        ana = torch.zeros(y0.numel(), x.numel(), dtype=torch.float64)
        for i in range(y0.numel()):
            out = fn(*inputs)
            cot = torch.zeros(out.numel(), dtype=out.dtype)
            cot[i] = 1
            (gx,) = torch.autograd.grad(out, (x,), cot.reshape(out.shape), allow_unused=True)
            if gx is not None:
                ana[i] = gx.reshape(-1).double()
        # numerical: central differences in the input dtype
        num = torch.zeros_like(ana)
        flat = x.detach().reshape(-1)
        for j in range(x.numel()):
            xs = []
            for sgn in (1, -1):
                xp = flat.clone()
                xp[j] = xp[j] + sgn * eps
                xs.append(xp.reshape(x.shape))
            with torch.no_grad():
                args_p = list(inputs); args_p[k] = xs[0]
                args_m = list(inputs); args_m[k] = xs[1]
                yp, ym = fn(*args_p), fn(*args_m)
            num[:, j] = ((yp - ym).double() / (2 * eps)).reshape(-1)
        r = ((ana - num).abs() / (atol + rtol * num.abs())).max().item()
        worst = max(worst, r)
    return worst


def _torch_grads(f, inputs, cot):
    import torch

    out = f(*inputs)
    return torch.autograd.grad(out, inputs, cot, allow_unused=True)


def verify_torch() -> bool:
    import torch

    from benchmarks.frameworks import torch_ops

    ok_all = True
    rows = []
    notes = []
    for op in torch_ops.ops():
        # float64
        c64 = _torch_gradcheck(op.fn, op.make_inputs(torch.float64))
        b64 = _torch_gradcheck(op.buggy_fn, op.make_inputs(torch.float64))
        # float32 (informational)
        c32 = _torch_gradcheck(op.fn, op.make_inputs(torch.float32))
        b32 = _torch_gradcheck(op.buggy_fn, op.make_inputs(torch.float32))
        # float32 with a float32-appropriate step and tolerance (informational)
        loose = dict(eps=1e-3, atol=1e-2, rtol=1e-2)
        c32l = _torch_gradcheck(op.fn, op.make_inputs(torch.float32), **loose)
        b32l = _torch_gradcheck(op.buggy_fn, op.make_inputs(torch.float32), **loose)

        # which input's gradient differs (float64, random cotangent)
        x = op.make_inputs(torch.float64)
        out = op.fn(*x)
        cot = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(0))
        gc = _torch_grads(op.fn, x, cot)
        gb = _torch_grads(op.buggy_fn, op.make_inputs(torch.float64), cot)
        differs = [i for i, (a, b) in enumerate(zip(gc, gb)) if not torch.allclose(a, b, rtol=1e-9, atol=1e-12)]

        # deterministic inputs?
        x1, x2 = op.make_inputs(torch.float64), op.make_inputs(torch.float64)
        same_inputs = all(torch.equal(a, b) for a, b in zip(x1, x2)) and all(
            a is not b for a, b in zip(x1, x2)
        )

        good = c64[0] == "pass" and b64[0] == "FAIL" and differs == [op.buggy_input] and same_inputs
        ok_all &= good
        shapes = ",".join("x".join(map(str, t.shape)) or "()" for t in x)
        ratios = [
            _gc_ratio(f, op.make_inputs(dt))
            for dt in (torch.float64, torch.float32)
            for f in (op.fn, op.buggy_fn)
        ]
        rows.append((op.name, shapes, op.buggy_input, c64, b64, c32, b32, differs, good, ratios, c32l, b32l))

        if op.nondeterministic:
            xs = op.make_inputs(torch.float64)
            outs64 = [op.fn(*xs).detach() for _ in range(50)]
            xs32 = op.make_inputs(torch.float32)
            outs32 = [op.fn(*xs32).detach() for _ in range(50)]

            def jitter(outs):
                st = torch.stack(outs)
                distinct = len({tuple(o.tolist()) for o in outs})
                spread = (st.max(0).values - st.min(0).values).abs().max().item()
                rel = spread / st.abs().max().item()
                return distinct, spread, rel

            d64, s64, r64 = jitter(outs64)
            d32, s32, r32 = jitter(outs32)
            notes.append(
                f"{op.name}: forward over 50 calls on identical input: float64 {d64} distinct "
                f"results (max spread {s64:.2e}, rel {r64:.1e}); float32 {d32} distinct "
                f"(max spread {s32:.2e}, rel {r32:.1e})"
            )
            for tol in (1e-10, 1e-6):
                for dt in (torch.float64, torch.float32):
                    r = _torch_gradcheck(op.fn, op.make_inputs(dt), nondet_tol=tol)
                    notes.append(f"  correct, {str(dt)[6:]}, nondet_tol={tol:g}: {r[0]} {r[1][:60]}")
            # repeat the default float64 gradcheck to see whether it is stable
            reps = [_torch_gradcheck(op.fn, op.make_inputs(torch.float64))[0] for _ in range(20)]
            notes.append(f"  correct, float64, defaults, 20 repeats: {reps.count('pass')} pass")
            reps = [_torch_gradcheck(op.buggy_fn, op.make_inputs(torch.float64))[0] for _ in range(20)]
            notes.append(f"  buggy,   float64, defaults, 20 repeats: {reps.count('FAIL')} FAIL")

    print("torch.autograd.gradcheck (default settings: eps=1e-6, atol=1e-5, rtol=1e-3)")
    print("  bi = buggy_input; (in k) = first input gradcheck reported; ratio = worst")
    print("  |analytical-numerical|/(atol+rtol*|numerical|), gradcheck fails when > 1")
    print("  f32 loose = float32 with eps=1e-3, atol=rtol=1e-2 (correct/buggy)")
    hdr = (
        f"{'op':21} {'input shapes':14} {'bi':>2} | {'f64 correct':18} {'f64 buggy':18} | "
        f"{'f32 correct':18} {'f32 buggy':18} | {'f32 loose':10} | {'differs':7} ok"
    )
    print(hdr)
    print("-" * len(hdr))

    def cell(res, ratio):
        where = ""
        if res[0] == "FAIL" and "respect to input" in res[1]:
            where = "(in " + res[1].split("respect to input")[1].strip(" ,.")[:1] + ")"
        return f"{res[0]}{where} {ratio:.2g}"

    for name, shapes, bi, c64, b64, c32, b32, differs, good, rt, c32l, b32l in rows:
        loose = f"{c32l[0]}/{b32l[0]}"
        print(
            f"{name:21} {shapes:14} {bi:>2} | {cell(c64, rt[0]):18} {cell(b64, rt[1]):18} | "
            f"{cell(c32, rt[2]):18} {cell(b32, rt[3]):18} | {loose:10} | {str(differs):7} "
            f"{'ok' if good else 'MISMATCH'}"
        )
    odd = [(r[0], k, res) for r in rows for k, res in (("f64 correct", r[3]), ("f64 buggy", r[4]),
           ("f32 correct", r[5]), ("f32 buggy", r[6])) if res[0] == "ERROR" or (res[0] == "FAIL" and "Jacobian mismatch" not in res[1])]
    for name, k, res in odd:
        print(f"  {name} {k}: {res[1]}")
    times = [r[3][2] for r in rows] + [r[4][2] for r in rows]
    print(f"slowest single float64 gradcheck: {max(times):.3f} s")
    if notes:
        print("\nnondeterministic ops:")
        for n in notes:
            print("  " + n)
    ok_all &= verify_torch_extras()
    print(f"\ntorch: {'ALL EXPECTATIONS MET' if ok_all else 'SOME EXPECTATIONS FAILED'}\n")
    return ok_all


def verify_torch_extras() -> bool:
    """The extra cases: gradcheck at exact ties, and the size of the float32-slope error."""
    import torch

    from benchmarks.frameworks import torch_ops

    extras = {case.name: case for case in torch_ops.extra_cases()}
    print("\nextra cases (gradcheck defaults; expected outcome in brackets):")
    ok = True
    for name, expected in (("maxpool1d_ties, even split", "pass"), ("maxpool1d_ties, argmax", "FAIL")):
        case = extras[name]
        got = _torch_gradcheck(case.fn, case.make_inputs(torch.float64))[0]
        got32 = _torch_gradcheck(case.fn, case.make_inputs(torch.float32))[0]
        ok &= got == expected
        print(f"  {name:27} float64 {got:5} [{expected}]  float32 {got32}")

    # Autograd of the plain forward is the reference: 0.1 * x differentiates to exactly 0.1 * g.
    leaky = next(op for op in torch_ops.ops() if op.name == "leaky_relu_near_kink")
    (x,) = leaky.make_inputs(torch.float64)
    g = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0))
    (reference,) = torch.autograd.grad(torch.where(x > 0, x, 0.1 * x), x, g)

    def off(fn) -> float:
        (grad,) = torch.autograd.grad(fn(x), x, g)
        return float(((grad - reference).abs() / reference.abs()).max())

    fixed, f32_slope = off(leaky.fn), off(extras["leaky_relu_f32_slope"].fn)
    slope_ok = fixed == 0.0 and 1e-8 < f32_slope < 2e-8
    ok &= slope_ok
    gc = _torch_gradcheck(extras["leaky_relu_f32_slope"].fn, leaky.make_inputs(torch.float64))[0]
    print(
        f"  leaky_relu: largest relative difference from autograd, float64: fixed op {fixed:.1e} [0], "
        f"leaky_relu_f32_slope {f32_slope:.2e} [1.5e-08]; gradcheck on the latter: {gc} "
        f"{'ok' if slope_ok else 'MISMATCH'}"
    )
    return ok


# --------------------------------------------------------------------------
# jax


def _jax_check(fn, args):
    from jax.test_util import check_grads

    t0 = time.perf_counter()
    try:
        check_grads(fn, args, order=1, modes=["rev"])
        res = ("pass", "")
    except AssertionError as e:
        msg = " ".join(str(e).split())
        res = ("FAIL", ("AssertionError: " + msg)[:70])
    except Exception as e:  # noqa: BLE001
        res = ("ERROR", _short(e))
    return res + (time.perf_counter() - t0,)


def verify_jax() -> bool:
    import jax

    jax.config.update("jax_enable_x64", True)  # here only; the library does not do this
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.frameworks import jax_ops

    ok_all = True
    rows = []
    for op in jax_ops.ops():
        args64 = op.make_args(jnp.float64)
        assert all(a.dtype == jnp.float64 for a in args64)
        c64 = _jax_check(op.fn, args64)
        b64 = _jax_check(op.buggy_fn, op.make_args(jnp.float64))
        args32 = op.make_args(jnp.float32)
        assert all(a.dtype == jnp.float32 for a in args32)
        c32 = _jax_check(op.fn, args32)
        b32 = _jax_check(op.buggy_fn, op.make_args(jnp.float32))

        out, vjp_c = jax.vjp(op.fn, *args64)
        _, vjp_b = jax.vjp(op.buggy_fn, *args64)
        cot = jnp.asarray(np.random.default_rng(0).standard_normal(np.shape(out)), dtype=out.dtype)
        gc, gb = vjp_c(cot), vjp_b(cot)
        differs = [i for i, (a, b) in enumerate(zip(gc, gb)) if not np.allclose(a, b, rtol=1e-9, atol=1e-12)]

        good = c64[0] == "pass" and b64[0] == "FAIL" and differs == [op.buggy_arg]
        ok_all &= good
        shapes = ",".join("x".join(map(str, a.shape)) or "()" for a in args64)
        rows.append((op.name, shapes, op.buggy_arg, c64, b64, c32, b32, differs, good))

    print('jax.test_util.check_grads(fn, args, order=1, modes=["rev"]) (defaults: eps=1e-4; tol f64 1e-5, f32 2e-3)')
    hdr = f"{'op':18} {'arg shapes':12} {'ba':>2} | {'f64 correct':11} {'f64 buggy':9} | {'f32 correct':11} {'f32 buggy':9} | {'cot differs':11} ok"
    print(hdr)
    print("-" * len(hdr))
    for name, shapes, ba, c64, b64, c32, b32, differs, good in rows:
        print(
            f"{name:18} {shapes:12} {ba:>2} | {c64[0]:11} {b64[0]:9} | {c32[0]:11} {b32[0]:9} | "
            f"{str(differs):11} {'ok' if good else 'MISMATCH'}"
        )
    print()
    for name, _, _, c64, b64, c32, b32, _, _ in rows:
        if c32[0] != "pass":
            print(f"  {name:18} f32 correct: {c32[0]} {c32[1]}")
        if b32[0] != "FAIL":
            print(f"  {name:18} f32 buggy not detected: {b32[0]}")
    times = [r[3][2] for r in rows] + [r[4][2] for r in rows]
    print(f"slowest single float64 check_grads (incl. jit/trace): {max(times):.3f} s")
    print(f"\njax: {'ALL EXPECTATIONS MET' if ok_all else 'SOME EXPECTATIONS FAILED'}\n")
    return ok_all


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch", action="store_true")
    p.add_argument("--jax", action="store_true")
    a = p.parse_args(argv)
    do_torch = a.torch or not a.jax
    do_jax = a.jax or not a.torch
    ok = True
    if do_torch:
        ok &= verify_torch()
    if do_jax:
        ok &= verify_jax()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
