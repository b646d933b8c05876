"""Evaluating the loss elsewhere: on an `Executor`'s workers, or many points in one vectorized call.

The probes of a check are independent, so `Objective.evaluate` hands a batch of points to
``executor=`` (a ``ProcessPoolExecutor``, a Dask ``Client(...).get_executor()``, any
`concurrent.futures.Executor`) in chunks. Each task carries the loss, a light copy of the parameter
structure (its shape, names and values, not the user's objects) and its points; the worker
rebuilds fresh parameter structures and calls the loss, exactly as the serial path does, and the
results come back in point order. The same seed therefore gives the same report, serial or not.

With ``vectorized=True`` the loss receives parameter structures whose every leaf has a leading
batch axis and returns one value per parameter set.

Every path calls the loss through `call_user`, so a user error surfaces as the same exception
whichever path ran it; an error raised on a worker crosses back as itself (see `_Failure`). The
points at which the loss is undefined (`OutsideDomain`) are found on every path alike: a worker
sends its record back with its values, and a batch that raises is split until the points that
raise are alone.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import GradprobeError, InvalidArgument, InvalidValue, UserFunctionError
from ..params._params import Params
from ._calling import call_user

if TYPE_CHECKING:  # the objective calls these functions; they only use its interface
    from ._objective import Objective

#: Chunks per worker: enough to balance uneven evaluation times, few enough to amortize transfers.
CHUNKS_PER_WORKER = 4
#: Vectorized calls hold at most this many bytes of parameter sets (and at most `MAX_BATCH` sets).
VECTOR_BYTES = 64 * 2**20
MAX_BATCH = 256


def require_executor(executor: Any) -> None:
    """`executor` must be None or a `concurrent.futures.Executor`."""
    if executor is None or isinstance(executor, Executor):
        return
    hint = ""
    if callable(getattr(executor, "get_executor", None)):
        hint = " For a Dask client, pass `client.get_executor()`."
    raise InvalidArgument(
        f"`executor` must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor() or "
        f"distributed.Client(...).get_executor()), got {type(executor).__name__}.{hint}",
        argument="executor",
    )


def _dumps_for(executor: Executor):
    """How `executor` ships a task to its workers; None when it does not need to (threads)."""
    if isinstance(executor, ThreadPoolExecutor):
        return None
    if type(executor).__module__.split(".")[0] == "distributed":
        import cloudpickle  # a dependency of distributed

        return cloudpickle.dumps
    return pickle.dumps


def ships_tasks(executor: Executor | None) -> bool:
    """Whether `executor` runs tasks in other processes (they must be pickled to get there)."""
    return executor is not None and _dumps_for(executor) is not None


def require_sendable(loss: Any, params: Params, executor: Executor | None) -> None:
    """Fail before any work when the loss (or the parameter structure) cannot reach the workers."""
    if executor is None:
        return
    dumps = _dumps_for(executor)
    if dumps is None:
        return
    where = f"the workers of `executor` ({type(executor).__name__})"
    if (method := _fresh_start(executor)) and _defined_in_fileless_main(loss):
        raise InvalidArgument(
            f"`loss` cannot reach {where}: they start by importing your `__main__` afresh (the {method!r} start "
            "method), and a function defined in an interactive session, a notebook or `python -c` is not there. "
            "Define it in a module file and import it, or use a ThreadPoolExecutor, or leave `executor` out.",
            argument="loss",
        )
    try:
        dumps(loss)
    except Exception as error:
        raise InvalidArgument(
            f"`loss` cannot be sent to {where}: it cannot be pickled ({type(error).__name__}: {error}). "
            "Define it at module level (not a lambda, a nested function or a closure over open files, locks "
            "or sockets), or use a ThreadPoolExecutor, or leave `executor` out.",
            argument="loss",
        ) from None
    try:
        dumps(params.skeleton())
    except Exception as error:
        raise InvalidArgument(
            f"`params` cannot be sent to {where}: its structure cannot be pickled ({type(error).__name__}: "
            f"{error}). Use plain dicts, lists and tuples, or leave `executor` out.",
            argument="params",
        ) from None


def _fresh_start(executor: Executor) -> str | None:
    """The start method of the executor's worker processes if they start fresh ("spawn",
    "forkserver"): they then find the user's functions by importing modules, `__main__` included,
    from their files."""
    context = getattr(executor, "_mp_context", None)
    method = context.get_start_method() if context is not None else None
    return method if method in ("spawn", "forkserver") else None


def _defined_in_fileless_main(function: Any) -> bool:
    """Whether `function` lives in a `__main__` with no file to import it from (a REPL, a notebook,
    `python -c`, a script piped on stdin: `__file__` is then missing or "<stdin>")."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return getattr(function, "__module__", None) == "__main__" and not (main_file and os.path.isfile(main_file))


def _worker_count(executor: Executor) -> int:
    count = getattr(executor, "_max_workers", None)
    return int(count) if isinstance(count, int) and count > 0 else (os.cpu_count() or 1)


def _cores() -> int:
    """The cores this process may run on (fewer than the machine's under `taskset` or a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _this_process() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


@dataclass(frozen=True)
class WorkerThreads:
    """The BLAS, OpenMP and torch threads a task may use in a worker process (module docstring).

    `parent` is the process that sent the task: a task that runs there after all (a Dask cluster
    of threads pickles its tasks too) leaves the user's settings alone.
    """

    limit: int
    parent: tuple[str, int]


def worker_threads(executor: Executor) -> WorkerThreads | None:
    """The limit for the tasks sent to `executor`: this machine's cores shared among its workers;
    None for an executor whose workers are threads of this process."""
    if not ships_tasks(executor):
        return None
    return WorkerThreads(max(1, _cores() // _worker_count(executor)), _this_process())


def _limit_loaded_libraries(limit: int) -> list[Callable[[], Any]]:
    """Hold torch and the loaded BLAS and OpenMP libraries to `limit` threads; what undoes it."""
    from threadpoolctl import ThreadpoolController

    undo = []
    torch = sys.modules.get("torch")  # only if the loss uses it: importing torch takes seconds
    if torch is not None and torch.get_num_threads() > limit:
        previous = torch.get_num_threads()
        torch.set_num_threads(limit)
        undo.append(lambda: torch.set_num_threads(previous))
    controller = ThreadpoolController()
    above = [library["filepath"] for library in controller.info() if library["num_threads"] > limit]
    if above:
        undo.append(controller.select(filepath=above).limit(limits=limit).restore_original_limits)
    return undo[::-1]


class _ProcessLimit:
    """The limit in this worker process, set by the first of its running tasks and undone by the
    last: BLAS's limit is process-wide, so two tasks at once (a Dask worker with several threads)
    that each saved and restored it would leave the second one's limit behind for good."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks = 0
        self.undo: list[Callable[[], Any]] = []

    @contextmanager
    def held(self, limit: int) -> Iterator[None]:
        with self.lock:
            if self.tasks == 0:
                self.undo = _limit_loaded_libraries(limit)
            self.tasks += 1
        try:
            yield
        finally:
            with self.lock:
                self.tasks -= 1
                if self.tasks == 0:
                    for step in self.undo:
                        step()
                    self.undo = []


_PROCESS_LIMIT = _ProcessLimit()


@contextmanager
def _threads_limited(threads: WorkerThreads | None) -> Iterator[None]:
    if threads is None or threads.parent == _this_process():
        yield
        return
    with _PROCESS_LIMIT.held(threads.limit):
        yield


def _chunks(count: int, pieces: int) -> list[tuple[int, int]]:
    pieces = max(1, min(count, pieces))
    bounds = np.linspace(0, count, pieces + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


#: What an error that cannot cross between processes becomes: its nearest class among these.
_FALLBACKS = (UserFunctionError, InvalidValue, InvalidArgument, GradprobeError)


class _Failure:
    """A gradprobe error raised on a worker, packed for the trip back to the caller.

    The error and its cause (the user's original exception) travel as themselves, so the caller
    sees the type, argument and cause a serial run raises. To another process they travel
    pickled by us, not by the executor: a cause that cannot be pickled is left behind, and an error
    that cannot be pickled here, or unpickled there, falls back to the nearest gradprobe class with
    the same message and argument, instead of breaking the pool.
    """

    def __init__(self, error: GradprobeError, pickled: bool) -> None:
        nearest = next(cls for cls in type(error).__mro__ if cls in _FALLBACKS)
        self.fallback = (nearest, str(error), error.argument)
        self.objects: Any = (error, error.__cause__)
        if pickled:
            for objects in ((error, error.__cause__), (error, None)):  # the error alone, if its cause won't go
                try:
                    self.objects = pickle.dumps(objects)
                    break
                except Exception:
                    self.objects = None

    def error(self) -> GradprobeError:
        """The error on the caller's side, its cause chained as in a serial run."""
        objects = self.objects
        if isinstance(objects, bytes):
            try:
                objects = pickle.loads(objects)
            except Exception:
                objects = None
        if objects is None:
            cls, message, argument = self.fallback
            return cls(message, argument=argument)
        error, cause = objects
        error.__cause__ = cause
        return error


def _evaluate_chunk(objective: Objective, points: list, dtype: Any, threads: WorkerThreads | None):
    """Worker side: evaluate `points` with `objective` (a fresh one per task, see
    `Objective.for_workers`), BLAS, OpenMP and torch held to `threads` in another process. Errors
    come back as values, the first in point order raised by the caller; pickled when they must
    cross to another process. With the values come the evaluations spent and the record of the
    points outside the loss's domain, whose first error travels as a `_Failure` too."""
    pickled = threads is not None  # a task with a limit is one that travels (`worker_threads`)
    try:
        with _threads_limited(threads):
            values = objective.evaluate(points, dtype=dtype)
    except GradprobeError as error:
        return "error", _Failure(error, pickled)
    domain = objective.domain
    first, domain.first = domain.first, None
    return "ok", (values, objective.nfev, domain, first and _Failure(first, pickled))


def evaluate_with_executor(objective: Objective, points: Sequence[Any], dtype: Any = None) -> np.ndarray:
    """Evaluate `points` on `objective.executor`, in chunks, results in point order."""
    executor = objective.executor
    threads = worker_threads(executor)
    chunks = _chunks(len(points), CHUNKS_PER_WORKER * _worker_count(executor))
    futures = [
        executor.submit(_evaluate_chunk, objective.for_workers(), list(points[a:b]), dtype, threads)
        for a, b in chunks
    ]
    size_of = {future: b - a for future, (a, b) in zip(futures, chunks)}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when="FIRST_COMPLETED")
            for future in done:
                status, value = future.result()
                # What the worker spent, as a serial run counts it.
                objective.nfev += value[1] if status == "ok" else size_of[future]
                objective.probing = "on the executor"
                if objective.on_evaluation is not None:
                    objective.on_evaluation(size_of[future])
    except BrokenProcessPool as error:
        for future in pending:
            future.cancel()
        raise InvalidArgument(
            "the workers of `executor` died while evaluating the loss: a worker ran out of memory or crashed, or "
            "could not start (a 'spawn' worker runs your script again: put the check under `if __name__ == "
            "\"__main__\":`) or load the loss (define it in a module file). The traceback printed above, if any, is "
            "the worker's; without `executor` the check runs in this process.",
            argument="executor",
        ) from error
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    is_complex = dtype is not None and np.dtype(dtype).kind == "c"
    results = np.empty(len(points), dtype=complex if is_complex else float)
    for future, (a, b) in zip(futures, chunks):  # the first error in point order, as serially
        status, value = future.result()
        if status == "error":
            raise value.error()
        values, _, domain, first = value
        domain.first = first and first.error()
        objective.domain.merge(domain, offset=a)
        results[a:b] = values
    return results


# -- vectorized ----------------------------------------------------------------------------------


def batch_size(params: Params) -> int:
    return int(max(1, min(MAX_BATCH, VECTOR_BYTES // (8 * max(1, params.size)))))


def build_batch(params: Params, flat: np.ndarray, dtype: Any = None) -> Any:
    """The parameter structure with a leading batch axis on every leaf (floats become 1-D arrays)."""
    count = flat.shape[0]
    leaves = {}
    for leaf in params.leaves:
        target = np.dtype(dtype) if dtype is not None else leaf.dtype
        leaves[leaf.path] = leaf.as_tensor(flat[:, leaf.slice].astype(target).reshape((count, *leaf.shape)))
    return params.with_leaves(leaves)


def _batch_values(value: Any, count: int, argument: str, allow_complex: bool) -> np.ndarray:
    if not isinstance(value, (np.ndarray, np.generic)) and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()  # a torch tensor
    try:
        array = np.asarray(value)
    except Exception:
        array = np.asarray(None)
    if array.dtype == object or array.dtype == bool or not np.issubdtype(array.dtype, np.number) or array.size != count:
        shape = getattr(array, "shape", None)
        raise InvalidArgument(
            f"with vectorized=True, `{argument}` must return one loss per parameter set, an array of shape "
            f"({count},); it returned {type(value).__name__} of shape {shape}. Reduce over every axis but the "
            "first, or leave `vectorized` out.",
            argument=argument,
        )
    if np.iscomplexobj(array) and not allow_complex:
        raise InvalidArgument(
            f"`{argument}` returned complex numbers for real parameters; return a real loss.", argument=argument
        )
    return array.reshape(count)


def call_batch(objective: Objective, flat: np.ndarray, dtype: Any = None, where: str = "") -> Any:
    """One call of the loss on the parameter sets `flat` (one per row)."""
    batch = f"on a batch of {len(flat)} parameter sets (vectorized=True)"
    tree = build_batch(objective.params, flat, dtype)
    return call_user(objective.loss, objective.argument, tree, where=f"{where} {batch}" if where else batch)


def evaluate_vectorized(objective: Objective, points: Sequence[Any], dtype: Any = None, where: str = "") -> np.ndarray:
    """Evaluate `points` in batches: one call of the loss per batch."""
    params = objective.params
    is_complex = dtype is not None and np.dtype(dtype).kind == "c"
    results = np.empty(len(points), dtype=complex if is_complex else float)
    step = batch_size(params)
    for start in range(0, len(points), step):
        chunk = points[start : start + step]
        flat = np.repeat(params.values.astype(results.dtype)[None, :], len(chunk), axis=0)
        probes = np.zeros(len(chunk), dtype=bool)  # points that move something and are real (`Objective.evaluate`)
        for k, (indices, values) in enumerate(chunk):
            flat[k, indices] = values
            moves = indices.stop > indices.start if isinstance(indices, slice) else len(indices) > 0
            probes[k] = moves and not is_complex
        results[start : start + len(chunk)] = _evaluate_rows(objective, flat, probes, start, dtype, where)
    return results


def _evaluate_rows(
    objective: Objective, flat: np.ndarray, probes: np.ndarray, offset: int, dtype: Any, where: str
) -> np.ndarray:
    """The loss at the parameter sets `flat` (the points from position `offset` on) in one call.

    A call that raises where some rows are probe points is split in halves, down to single rows,
    where the loss is undefined (`OutsideDomain`): `k` such points in a batch of `n` cost about
    ``2 k log2 n`` calls. A batch that raises while its halves return values everywhere fails for
    being a batch, and raises. Calls that raised on several rows are not counted as evaluations, so
    that `nfev` is a serial run's.
    """
    count = len(flat)
    try:
        value = call_batch(objective, flat, dtype, where)
    except UserFunctionError as error:
        if not probes.any():  # the starting point: an error
            objective.nfev += count
            raise
        if count == 1:
            objective.nfev += 1
            return np.array([objective.domain.record(error, offset, "in a vectorized batch")])
        failed = error  # the halves are evaluated below, outside this handler
    else:
        objective.nfev += count
        objective.domain.returned_values(int(probes.sum()))
        if objective.on_evaluation is not None:
            objective.on_evaluation(count)
        return _batch_values(value, count, objective.argument, dtype is not None and np.dtype(dtype).kind == "c")
    outside, half = objective.domain.points, count // 2
    values = np.concatenate([
        _evaluate_rows(objective, flat[:half], probes[:half], offset, dtype, where),
        _evaluate_rows(objective, flat[half:], probes[half:], offset + half, dtype, where),
    ])
    if objective.domain.points == outside:
        raise failed
    return values
