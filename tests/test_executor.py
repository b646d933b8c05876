"""`executor=` (a process pool, a Dask cluster) and `vectorized=True`: the same report as a serial
run, seed for seed; a loss that cannot reach the workers is refused before any work."""

import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import gradprobe as gp
from gradprobe.estimate import _executor

RNG = np.random.default_rng(11)
# Large enough that "auto" is directional (and localizes the planted error), small enough to be quick.
LARGE = {"W": RNG.standard_normal((40, 30)) / 6, "v": RNG.standard_normal(30)}
SMALL = {"W": LARGE["W"][:8, :6].copy(), "v": LARGE["v"][:6].copy()}
CALLS = {"count": 0}


def loss(p):
    """Module level, so that worker processes can import it."""
    CALLS["count"] += 1
    z = np.tanh(p["W"] @ p["v"])
    return float(np.sum(z**2) + 0.1 * np.sum(p["v"] ** 4))


def grad(p):
    z = np.tanh(p["W"] @ p["v"])
    d = 2 * z * (1 - z**2)
    return {"W": np.outer(d, p["v"]), "v": p["W"].T @ d + 0.4 * p["v"] ** 3}


def wrong_grad(p):
    g = grad(p)
    g["W"][7, 3] *= -1.0
    return g


def batched_loss(p):
    """`loss` over a leading batch axis of parameter sets."""
    z = np.tanh(np.einsum("bij,bj->bi", p["W"], p["v"]))
    return np.sum(z**2, axis=-1) + 0.1 * np.sum(p["v"] ** 4, axis=-1)


def one_at_a_time(p):
    """`batched_loss` on a batch of one: the same arithmetic as in a batch."""
    return float(batched_loss({key: np.asarray(value)[None] for key, value in p.items()})[0])


def raising_loss(p):
    # At every point but the start: one that raised only where v[0] moves would be undefined there
    # (outside its domain, see test_domain.py), and the other elements would be checked.
    if not all(np.array_equal(p[key], LARGE[key]) for key in LARGE):
        raise ValueError("no such point")
    return loss(p)


def same(first, second):
    assert first == second
    assert first.to_json() == second.to_json() and str(first) == str(second)


@pytest.fixture(scope="module")
def pool():
    # spawn: the workers import this module afresh, as on macOS and Windows
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@pytest.mark.slow
@pytest.mark.parametrize("params, strategy", [(LARGE, "auto"), (SMALL, "full"), (LARGE, "sample")], ids=["directional", "full", "sample"])
def test_a_process_pool_gives_the_serial_report(pool, params, strategy):
    serial = gp.check(loss, wrong_grad, params, strategy=strategy, seed=3)
    CALLS["count"] = 0
    parallel = gp.check(loss, wrong_grad, params, strategy=strategy, seed=3, executor=pool)
    same(serial, parallel)
    if strategy != "sample":  # 32 sampled elements of W rarely include the wrong one
        assert parallel.status == "fail" and parallel.failing == ("W",)
    # Single evaluations run here: the starting point, and the directional strategy's one repeat
    # call. Every probe ran in the workers.
    assert CALLS["count"] == (2 if parallel.strategy == "directional" else 1)
    if strategy == "auto":
        assert parallel.strategy == "directional" and parallel.tensors["W"].worst[0].index == (7, 3)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_report_and_another_seed_another_direction(pool):
    first = gp.check(loss, grad, LARGE, seed=5, executor=pool)
    again = gp.check(loss, grad, LARGE, seed=5)
    other = gp.check(loss, grad, LARGE, seed=6)
    same(first, again)
    assert other.guarantee.thresholds != first.guarantee.thresholds


@pytest.mark.slow
def test_a_dask_cluster_gives_the_serial_report():
    distributed = pytest.importorskip("distributed")
    serial = gp.check(loss, wrong_grad, LARGE, seed=2)
    # Random ports: a fixed one may be taken by another cluster on the machine.
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0", scheduler_port=0
    ) as cluster, distributed.Client(cluster) as client:
        report = gp.check(loss, wrong_grad, LARGE, seed=2, executor=client.get_executor())
    same(serial, report)
    assert report.tensors["W"].worst[0].index == (7, 3)


def test_a_loss_that_cannot_be_pickled_is_refused_before_any_work(pool):
    calls = []

    def local_loss(p):  # a nested function: pickle cannot find it by name
        calls.append(1)
        return loss(p)

    with pytest.raises(gp.InvalidArgument, match=r"`loss` cannot be sent to the workers of `executor` \(ProcessPoolExecutor\)") as info:
        gp.check(local_loss, grad, LARGE, executor=pool)
    assert info.value.argument == "loss" and "module level" in str(info.value)
    assert calls == []


def test_dask_refuses_what_cloudpickle_cannot_send():
    distributed = pytest.importorskip("distributed")
    lock = threading.Lock()

    def locked_loss(p):
        with lock:
            return loss(p)

    executor = distributed.client.ClientExecutor.__new__(distributed.client.ClientExecutor)  # never started
    with pytest.raises(gp.InvalidArgument, match=r"`loss` cannot be sent .* \(ClientExecutor\): it cannot be pickled"):
        gp.check(locked_loss, grad, LARGE, executor=executor)


def test_threads_need_no_pickling_and_agree():
    with ThreadPoolExecutor(3) as executor:
        report = gp.check(lambda p: loss(p), wrong_grad, LARGE, executor=executor, seed=4)
    same(report, gp.check(loss, wrong_grad, LARGE, seed=4))


@pytest.mark.slow
def test_an_error_in_a_worker_names_the_loss(pool):
    with pytest.raises(gp.UserFunctionError, match=r"`loss` raised ValueError .*no such point") as info:
        gp.check(raising_loss, grad, LARGE, executor=pool)
    assert info.value.argument == "loss"


@pytest.mark.parametrize("value, message", [("threads", "must be a concurrent.futures.Executor"), (object(), "got object")])
def test_executor_must_be_an_executor(value, message):
    with pytest.raises(gp.InvalidArgument, match=message) as info:
        gp.check(loss, grad, SMALL, executor=value)
    assert info.value.argument == "executor"


def test_a_dask_client_itself_gets_a_hint():
    class Client:
        def get_executor(self):
            return None

    with pytest.raises(gp.InvalidArgument, match=r"pass `client.get_executor\(\)`"):
        gp.check(loss, grad, SMALL, executor=Client())


# -- vectorized ----------------------------------------------------------------------------------------


class Counting:
    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, p):
        self.calls += 1
        return self.function(p)


@pytest.mark.parametrize("strategy", ["full", "directional"])
def test_vectorized_evaluation_takes_many_points_per_call(strategy):
    params = SMALL if strategy == "full" else LARGE
    serial = gp.check(one_at_a_time, wrong_grad, params, strategy=strategy)
    batched = Counting(batched_loss)
    report = gp.check(batched, wrong_grad, params, strategy=strategy, vectorized=True)
    assert report.status == serial.status == "fail" and report.failing == serial.failing
    assert report.nfev == serial.nfev and batched.calls < report.nfev / 3
    assert report.tensors == serial.tensors
    assert report.tensors["W"].worst[0].index == serial.tensors["W"].worst[0].index == (7, 3)
    assert report.options["vectorized"] is True and "vectorized=True" in report.reproduce


@pytest.mark.slow
def test_vectorized_and_a_process_pool_together(pool):
    serial = gp.check(batched_loss, wrong_grad, LARGE, vectorized=True, seed=1)
    same(serial, gp.check(batched_loss, wrong_grad, LARGE, vectorized=True, seed=1, executor=pool))


def test_a_vectorized_loss_must_return_one_value_per_parameter_set():
    with pytest.raises(gp.InvalidArgument, match=r"with vectorized=True, `loss` must return one loss per parameter set") as info:
        gp.check(lambda p: float(np.sum(p["v"])), grad, SMALL, vectorized=True)
    assert info.value.argument == "loss"


# -- threads in the workers ------------------------------------------------------------------------


def threads_here():
    """The threads BLAS and torch may use in this process (torch: None where it is not imported)."""
    blas = max(library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas")
    torch = sys.modules.get("torch")
    return blas, torch.get_num_threads() if torch is not None else None


def start_with_threads(count, with_torch):
    """A pool's initializer: the worker's own limits, which a check must hand back after each task."""
    if with_torch:
        import torch

        torch.set_num_threads(count)
    threadpool_limits(count)  # called, not a context: the limit stays


class ThreadsSeen:
    """`loss`, which also writes down where it ran (process) and `threads_here()` there; a file per
    process and thread, in `folder`, since the workers' memory does not come back."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def __call__(self, p):
        with open(self.folder / f"{os.getpid()}-{threading.get_ident()}.txt", "a") as file:
            file.write(repr(threads_here()) + "\n")
        return loss(p)

    def seen(self):
        """{process id: the set of `threads_here()` its evaluations saw}"""
        seen = {}
        for path in self.folder.glob("*.txt"):
            pid = int(path.stem.split("-")[0])
            seen.setdefault(pid, set()).update(eval(line) for line in path.read_text().splitlines())
        return seen


def test_worker_threads_share_the_cores_among_the_workers_of_another_process(monkeypatch):
    monkeypatch.setattr(_executor, "_cores", lambda: 8)
    for workers, limit in [(1, 8), (3, 2), (8, 1), (16, 1)]:
        executor = ProcessPoolExecutor(workers)  # starts no process before a task is submitted
        assert _executor.worker_threads(executor).limit == limit
        executor.shutdown()
    with ThreadPoolExecutor(2) as threads:
        assert _executor.worker_threads(threads) is None  # threads of this process: the user's settings


@pytest.mark.slow
@pytest.mark.parametrize("with_torch", [False, True], ids=["numpy", "torch"])
def test_a_worker_process_runs_blas_and_torch_on_its_share_of_the_cores(tmp_path, monkeypatch, with_torch):
    if with_torch:
        pytest.importorskip("torch")
    monkeypatch.setattr(_executor, "_cores", lambda: 4)  # 4 cores, 2 workers: 2 threads each
    parent, parent_info = threads_here(), threadpool_info()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn, initializer=start_with_threads, initargs=(3, with_torch)) as pool:
        recorder = ThreadsSeen(tmp_path)
        report = gp.check(recorder, grad, SMALL, executor=pool)
        after_tasks = {pool.submit(threads_here).result() for _ in range(8)}
    assert report.status == "pass"
    seen = recorder.seen()
    workers = {pid: threads for pid, threads in seen.items() if pid != os.getpid()}
    assert workers and all(threads == {(2, 2 if with_torch else None)} for threads in workers.values())
    assert seen[os.getpid()] == {parent}  # the starting point, evaluated here, with the user's settings
    assert after_tasks == {(3, 3 if with_torch else None)}  # each worker's own limits, back after each task
    assert threads_here() == parent and threadpool_info() == parent_info


def test_threads_of_this_process_run_with_the_users_limits(tmp_path):
    parent, parent_info = threads_here(), threadpool_info()
    recorder = ThreadsSeen(tmp_path)
    with ThreadPoolExecutor(2) as threads:
        gp.check(recorder, grad, SMALL, executor=threads)
    assert recorder.seen() == {os.getpid(): {parent}}
    assert threads_here() == parent and threadpool_info() == parent_info


@pytest.mark.slow
def test_a_dask_cluster_of_threads_runs_with_the_users_limits(tmp_path):
    """Dask pickles the tasks even when its workers are threads of this process; they run here
    with the user's limits, which are left as they were."""
    distributed = pytest.importorskip("distributed")
    parent, parent_info = threads_here(), threadpool_info()
    recorder = ThreadsSeen(tmp_path)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0", scheduler_port=0
    ) as cluster, distributed.Client(cluster) as client:
        gp.check(recorder, grad, SMALL, executor=client.get_executor())
    assert recorder.seen() == {os.getpid(): {parent}}
    assert threads_here() == parent and threadpool_info() == parent_info
