"""A fixed list of random programs (tests/_compositions.py), for comparing two revisions.

`properties.py` draws its programs with hypothesis, and which programs come next depends on the
verdicts so far: two revisions of gradprobe see different programs. Here the list depends on
`--seed` only. Each program is checked with its exact gradient and, when that passes, with one
tensor's gradient off by f times the stated resolution, as in `properties.py`.

    python benchmarks/fixed_programs.py --count 8000 --seed 777
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/fixed_programs.py --count 8000 --seed 777
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import gradprobe as gp  # noqa: E402
from _compositions import UNARY, Mutation, build  # noqa: E402


def fixed_cases(count: int, seed: int, dtype) -> list:
    """`count` (program, mutation) pairs drawn as `programs` and `mutations` draw them."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        plan = []
        for _ in range(int(rng.integers(1, 5))):
            kind = int(rng.integers(4))
            if kind == 0:
                plan.append(("affine", int(rng.integers(1, 4))))
            elif kind == 1:
                plan.append(("scale",))
            else:
                plan.append((str(rng.choice(UNARY)),) if kind == 2 else ("softmax",))
        reduction = str(rng.choice(["sum", "mean", "dot", "logsumexp"]))
        program = build(plan, reduction, int(rng.integers(1, 4)), dtype, int(rng.integers(2**32)))
        name = str(rng.choice(sorted(program.params)))
        size = program.params[name].size
        direction = np.zeros(size)
        count_wrong = int(rng.integers(1, size + 1))
        direction[rng.choice(size, count_wrong, replace=False)] = rng.standard_normal(count_wrong)
        direction /= np.linalg.norm(direction)
        factor = float(2.0 ** rng.uniform(np.log2(1.5), 12.0))
        cases.append((program, Mutation(name, direction.reshape(program.params[name].shape), factor)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args()
    print(f"gradprobe from {Path(gp.__file__).parent}")
    outcomes: Counter = Counter()
    for k, (program, mutation) in enumerate(fixed_cases(args.count, args.seed, np.dtype(args.dtype))):
        exact = gp.check(program.loss, program.grad, program.params)
        if exact.status != "pass":
            outcomes[f"exact {exact.status}"] += 1
            continue
        stated = exact.tensors[mutation.name].resolution
        grad, made = mutation.apply(program, stated)
        report = gp.check(program.loss, grad, program.params)
        if {n for n, t in report.tensors.items() if t.status == "fail"} == {mutation.name}:
            outcomes["caught"] += 1
            continue
        outcomes[f"missed ({report.status})"] += 1
        print(f"program {k}: {program.describe()} [{mutation.name}] error {made / stated:.1f}x the stated "
              f"resolution {stated:.2e}; the wrong gradient got {report.status}")  # fmt: skip
    print(dict(outcomes))


if __name__ == "__main__":
    main()
