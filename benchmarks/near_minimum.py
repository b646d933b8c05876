"""Correct and planted gradients of the Rosenbrock function close to its minimum.

Near a minimum the gradient is tiny beside the terms it is computed from (``x[i+1] - x[i]**2``
at ``x = 1`` carries the rounding of ``x**2``), so its float64 value and the loss's changes are
both off by about the curvature times one ulp of the parameters, and the loss's rounding noise
grows with the distance from the point. Per dimension n and distance d from (1, ..., 1): the
verdicts of `gp.check` on the exact gradient at `--points` seeded points ``1 + d u / |u|``
(every FAIL is a false one), the median stated resolution, and how often a gradient with its
element 1 times 1.01 and 1.001 is caught at the same points, and how often one of them PASSed at a
resolution finer than its error (relative to the gradient's norm): a dishonest PASS. Near the
minimum element 1's share of the norm is small, so a 1% error in it can be below the resolution.

    python benchmarks/near_minimum.py
    python benchmarks/near_minimum.py --points 100 --sizes 5 100 --distances 1e-7 1e-8
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

import gradprobe as gp


def loss(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def gradient(x: np.ndarray) -> np.ndarray:
    g, t = np.zeros_like(x), x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * t - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * t
    return g


def planted(factor: float):
    def wrong(x: np.ndarray) -> np.ndarray:
        g = gradient(x)
        g[1] *= factor
        return g

    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10, 100])
    parser.add_argument("--distances", type=float, nargs="+", default=[1e-4, 1e-6, 1e-7, 1e-8, 1e-10])
    args = parser.parse_args()
    print("| n | distance | exact gradient: pass / inconclusive / FAIL | median resolution | 1.01x caught | 1.001x caught | dishonest PASS |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n in args.sizes:
        for d in args.distances:
            verdicts: collections.Counter[str] = collections.Counter()
            resolutions, caught, dishonest = [], {1.01: 0, 1.001: 0}, 0
            for seed in range(args.points):
                u = np.random.default_rng(1000 * n + seed).standard_normal(n)
                x = 1.0 + d * u / np.linalg.norm(u)
                report = gp.check(loss, gradient, x, progress=False)
                verdicts[report.status] += 1
                resolutions.append(report.resolution)
                g = gradient(x)
                for factor in caught:
                    wrong = gp.check(loss, planted(factor), x, progress=False)
                    caught[factor] += wrong.status == "fail"
                    error = abs(factor - 1) * abs(g[1]) / np.linalg.norm(g)
                    dishonest += wrong.status == "pass" and error > wrong.resolution
            print(f"| {n} | {d:.0e} | {verdicts['pass']} / {verdicts['inconclusive']} / {verdicts['fail']} | "
                  f"{np.median(resolutions):.1e} | {caught[1.01]} of {args.points} | {caught[1.001]} of {args.points} | {dishonest} |", flush=True)


if __name__ == "__main__":
    main()
