"""A CPU-bound numpy loss checked serially and on a process pool, with and without gradprobe's
limit on the workers' BLAS threads (issue 13: each worker's OpenBLAS started a thread per core,
and a pool of 8 ran slower than serial).

The loss: 200 parameters (a 200-vector), three 200 x 200 matrix products with tanh per
evaluation. `gp.check(loss, grad, params)` (a full coordinate check) runs in six settings,
interleaved round by round so that a noisy, shared machine slows them alike:

- serial: no executor, BLAS with its default threads (one per core);
- serial, the user's ``threadpool_limits(1)`` around the check;
- processes: ``ProcessPoolExecutor(2)``, every task held to cores / workers BLAS threads;
- processes, no limit: the same pool with gradprobe's limit off (the behaviour before it);
- threads: ``ThreadPoolExecutor(2)``, where gradprobe leaves this process's limits alone;
- threads, the user's ``threadpool_limits(1)`` around the check (what the docs advise).

Each setting's median over the rounds, its ratio to serial's median, and the median over the
rounds of its ratio to serial in the same round, which a change of the machine's load between
rounds disturbs less (the target: a process pool at most 1.1x serial).

Run: python benchmarks/executor_threads.py [--rounds 5] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import gradprobe as gp
from gradprobe.estimate import _executor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import markdown, write_section  # noqa: E402

SIZE = 200
RNG = np.random.default_rng(0)
X = RNG.standard_normal((SIZE, SIZE))
Y = RNG.standard_normal((SIZE, SIZE)) / SIZE**0.5
B = RNG.standard_normal(SIZE) / 4
PARAMS = {"a": RNG.standard_normal(SIZE) / 4}
LAYERS = 3


def forward(p):
    hidden = [np.tanh(X + np.outer(p["a"], B))]
    for _ in range(LAYERS):
        hidden.append(np.tanh(hidden[-1] @ Y))
    return hidden


def loss(p):
    return float(np.sum(forward(p)[-1] ** 2))


def grad(p):
    hidden = forward(p)
    upstream = 2 * hidden[-1]
    for layer in range(LAYERS, 0, -1):
        upstream = (upstream * (1 - hidden[layer] ** 2)) @ Y.T
    first = upstream * (1 - hidden[0] ** 2)
    return {"a": first @ B}


def unlimited(executor):
    """The behaviour before the limit: tasks run with the worker's own BLAS threads."""
    return None


def timed(executor, limit: bool, users_limit: int | None) -> float:
    """Seconds for one check; `limit`: gradprobe's on the workers, `users_limit`: the user's
    ``threadpool_limits`` in this process (None: none)."""
    original = _executor.worker_threads
    if not limit:
        _executor.worker_threads = unlimited
    try:
        with threadpool_limits(users_limit):
            start = time.perf_counter()
            report = gp.check(loss, grad, PARAMS, executor=executor, progress=False)
            seconds = time.perf_counter() - start
    finally:
        _executor.worker_threads = original
    assert report.status == "pass", report
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="RESULTS.md to write the section into")
    args = parser.parse_args()
    loads = [" ".join(f"{value:.1f}" for value in os.getloadavg())]

    with ProcessPoolExecutor(2) as processes, ThreadPoolExecutor(2) as threads:
        settings = {
            "serial": (None, True, None),
            "serial, user's threadpool_limits(1)": (None, True, 1),
            "ProcessPoolExecutor(2), limited (now)": (processes, True, None),
            "ProcessPoolExecutor(2), no limit (before)": (processes, False, None),
            "ThreadPoolExecutor(2)": (threads, True, None),
            "ThreadPoolExecutor(2), user's threadpool_limits(1)": (threads, True, 1),
        }
        timed(processes, True, None)  # warm-up: start the workers, load BLAS there
        times: dict[str, list[float]] = {name: [] for name in settings}
        for round_ in range(args.rounds):
            for name, (executor, limit, users_limit) in settings.items():
                times[name].append(timed(executor, limit, users_limit))
            print(f"round {round_ + 1}: " + ", ".join(f"{times[n][-1]:.2f}" for n in settings), flush=True)

    loads.append(" ".join(f"{value:.1f}" for value in os.getloadavg()))
    serial = statistics.median(times["serial"])
    rows = [
        {
            "setting": name,
            "median s": f"{statistics.median(values):.2f}",
            "min-max s": f"{min(values):.2f}-{max(values):.2f}",
            "ratio to serial (medians)": f"{statistics.median(values) / serial:.2f}",
            "ratio to serial in the round (median)": f"{statistics.median(v / s for v, s in zip(values, times['serial'])):.2f}",
        }
        for name, values in times.items()
    ]
    table = markdown(rows)
    print(table)
    if args.write:
        limit = max(1, _executor._cores() // 2)
        nfev = gp.check(loss, grad, PARAMS, progress=False).nfev
        section = f"""## Executor threads

Command: `python benchmarks/executor_threads.py --rounds {args.rounds} --write benchmarks/RESULTS.md`.
Machine: {platform.platform()}, nproc {os.cpu_count()} (shared with other jobs), Python
{platform.python_version()}, numpy {np.__version__} (OpenBLAS, pthreads). Date: {datetime.date.today()}.
Load average (1, 5, 15 min) at the start: {loads[0]}, at the end: {loads[1]} (another long
benchmark shared the 2 cores).
Times per round (s, settings in table order): {"; ".join(", ".join(f"{times[n][r]:.2f}" for n in times) for r in range(args.rounds))}.

A numpy loss of {PARAMS["a"].size} parameters, three {SIZE} x {SIZE} matrix products with tanh per evaluation,
`gp.check(loss, grad, params)` ({nfev} evaluations, a full coordinate check) in each setting, the
settings interleaved round by round, {args.rounds} rounds. "limited": every task on a worker
process runs with BLAS, OpenMP and torch held to cores / workers = {limit} thread(s)
(`src/gradprobe/estimate/_executor.py`); "no limit": the same pool without it, as before issue 13.
The thread pool runs the loss in this process, whose limits gradprobe leaves to the user;
"user's threadpool_limits(1)" wraps the check in `with threadpoolctl.threadpool_limits(1):`.

{table}
"""
        write_section(args.write, "## Executor threads", section)


if __name__ == "__main__":
    main()
