"""Verify the bug suite against careful numerical gradients.

Run:  python benchmarks/bugsuite/verify_cases.py

For every case (float64) the analytic gradient is compared with
  * a central difference, step h = 1e-6 * max(1, |x_i|), and
  * a Richardson estimate (4 D(h/2) - D(h)) / 3,
per tensor, norm-wise: ||num - g|| / ||g||.  Correct gradients must agree to
better than TOL (1e-7) with the Richardson estimate.  Every bug must differ
from the numerical gradient by its stated size (on its tensor only), and leave
the other tensors untouched.  Also checks determinism, non-mutation, float32
dtypes/finiteness, and the time of one loss evaluation.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bugsuite.cases import BUG_KINDS, bugs, cases  # noqa: E402

TOL = 1e-7


def numgrad(loss, params):
    """Central differences and their Richardson extrapolation, per tensor."""
    central, rich = {}, {}
    for k, v in params.items():
        c = np.zeros_like(v)
        r = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            x0 = v[i]
            h = 1e-6 * max(1.0, abs(x0))

            def D(hh):
                q = dict(params)
                w = v.copy()
                w[i] = x0 + hh
                xp = w[i]
                q[k] = w
                fp = float(loss(q))
                w = v.copy()
                w[i] = x0 - hh
                xm = w[i]
                q[k] = w
                fm = float(loss(q))
                return (fp - fm) / (xp - xm)   # actual (representable) step

            d1 = D(h)
            d2 = D(h / 2)
            c[i] = d1
            r[i] = (4 * d2 - d1) / 3
        central[k], rich[k] = c, r
    return central, rich


def rel(a, b):
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a))


def main() -> int:
    ok = True
    cs = cases(np.float64)
    bs = bugs(np.float64)
    names = [c.name for c in cs]
    assert len(set(names)) == len(names), "duplicate case names"

    # ---- determinism ---------------------------------------------------
    cs2 = cases(np.float64)
    for a, b in zip(cs, cs2):
        for k in a.params:
            if not np.array_equal(a.params[k], b.params[k]):
                print(f"NONDETERMINISTIC params {a.name}.{k}")
                ok = False
        if float(a.loss(a.params)) != float(b.loss(b.params)):
            print(f"NONDETERMINISTIC loss {a.name}")
            ok = False

    # ---- correct gradients --------------------------------------------
    print(f"{'case':18s} {'#par':>5s} {'loss':>12s} {'central':>10s} {'richardson':>10s}"
          f" {'us/loss':>8s}  worst tensor")
    num_cache = {}
    err_cache = {}
    total_params = 0
    for c in cs:
        p = c.params
        snap = {k: v.copy() for k, v in p.items()}
        L = c.loss(p)
        g = c.grad(p)
        for k in p:
            if not np.array_equal(p[k], snap[k]):
                print(f"MUTATED params {c.name}.{k}")
                ok = False
        if set(g) != set(p) or any(g[k].shape != p[k].shape for k in p):
            print(f"BAD grad keys/shapes {c.name}")
            ok = False
            continue
        npar = sum(v.size for v in p.values())
        total_params += npar
        central, rich = numgrad(c.loss, p)
        num_cache[c.name] = rich
        ec = {k: rel(central[k], g[k]) for k in p}
        er = {k: rel(rich[k], g[k]) for k in p}
        err_cache[c.name] = er
        worst = max(er, key=er.get)
        n = 200
        t0 = time.perf_counter()
        for _ in range(n):
            c.loss(p)
        us = (time.perf_counter() - t0) / n * 1e6
        flag = "" if er[worst] < TOL else "   <-- FAIL"
        if er[worst] >= TOL:
            ok = False
        print(f"{c.name:18s} {npar:5d} {float(L):12.5g} {max(ec.values()):10.2e} {er[worst]:10.2e}"
              f" {us:8.1f}  {worst}{flag}")
    print(f"{len(cs)} cases, {total_params} parameters in total")

    # ---- bugs ----------------------------------------------------------
    print()
    print(f"{'case':18s} {'kind':12s} {'tensor':10s} {'stated':>10s} {'vs numeric':>10s} {'ratio-1':>9s}")
    byname = {c.name: c for c in cs}
    for b in bs:
        c = byname[b.case]
        g = c.grad(c.params)
        gb = b.grad(c.params)
        for k in c.params:
            if k != b.tensor and not np.array_equal(gb[k], g[k]):
                print(f"BUG TOUCHES OTHER TENSOR {b.case} {b.kind} {b.tensor}: {k}")
                ok = False
        num = num_cache[b.case][b.tensor]
        meas = rel(gb[b.tensor], num)
        # numeric error bound for this tensor, relative to ||g||
        slack = 5 * err_cache[b.case][b.tensor] + 1e-12
        good = abs(meas - b.size) <= slack + 1e-3 * b.size and b.size > 0
        if b.kind not in BUG_KINDS:
            good = False
        if not good:
            ok = False
        print(f"{b.case:18s} {b.kind:12s} {b.tensor:10s} {b.size:10.3e} {meas:10.3e}"
              f" {meas / b.size - 1:9.1e}{'' if good else '   <-- FAIL'}")

    # ---- summary of bugs ----------------------------------------------
    print()
    print(f"{len(bs)} bugs")
    kinds = Counter(b.kind for b in bs)
    print("per kind:", dict(sorted(kinds.items())))
    bands = Counter()
    for b in bs:
        if b.size >= 1e-2:
            bands[">=1e-2"] += 1
        elif 3e-4 <= b.size <= 3e-3:
            bands["~1e-3 [3e-4,3e-3]"] += 1
        elif 3e-7 <= b.size <= 3e-6:
            bands["~1e-6 [3e-7,3e-6]"] += 1
        else:
            bands["other"] += 1
    print("per size band:", dict(bands))
    cov = Counter(b.case for b in bs)
    print("cases without bugs:", [n for n in names if n not in cov])
    if len(bs) < 60 or any(kinds[k] < 5 for k in BUG_KINDS) or bands["~1e-3 [3e-4,3e-3]"] < 8 \
            or bands["~1e-6 [3e-7,3e-6]"] < 8 or bands[">=1e-2"] < 20:
        print("BUG COUNT REQUIREMENTS NOT MET")
        ok = False

    # ---- float32 ---------------------------------------------------------
    c32 = cases(np.float32)
    b32 = bugs(np.float32)
    bad32 = []
    for c in c32:
        if any(v.dtype != np.float32 for v in c.params.values()):
            bad32.append(f"{c.name}: params not float32")
        L = c.loss(c.params)
        if np.asarray(L).dtype != np.float32 or not np.isfinite(L):
            bad32.append(f"{c.name}: loss {np.asarray(L).dtype} {L}")
        g = c.grad(c.params)
        for k, v in g.items():
            if v.dtype != np.float32 or v.shape != c.params[k].shape or not np.all(np.isfinite(v)):
                bad32.append(f"{c.name}.{k}: grad {v.dtype} finite={np.all(np.isfinite(v))}")
    byname32 = {c.name: c for c in c32}
    b64 = {(b.case, b.kind, b.tensor, i): b.size for i, b in enumerate(bs)}
    for i, b in enumerate(b32):
        if b64.get((b.case, b.kind, b.tensor, i)) != b.size:
            bad32.append(f"bug {i}: float32 list differs from float64 list")
        c = byname32[b.case]
        gb = b.grad(c.params)
        for k, v in gb.items():
            if v.dtype != np.float32 or not np.all(np.isfinite(v)):
                bad32.append(f"bug {b.case}/{b.kind}/{b.tensor}: {k} {v.dtype}")
    # float32 vs float64 agreement of the correct gradients (sanity)
    worst32 = 0.0
    for c, c6 in zip(c32, cs):
        g32 = c.grad(c.params)
        g64 = c6.grad({k: v.astype(np.float64) for k, v in c.params.items()})
        for k in g32:
            worst32 = max(worst32, rel(g32[k].astype(np.float64), g64[k]))
    print()
    print(f"float32: {len(c32)} cases, {len(b32)} bugs; problems: {bad32 or 'none'}; "
          f"max rel diff float32 grad vs float64 grad at the same point: {worst32:.2e}")
    if bad32:
        ok = False

    print()
    print("ALL OK" if ok else "FAILURES")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
