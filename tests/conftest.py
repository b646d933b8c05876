import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from _guard import Guard


@pytest.fixture(scope="session", autouse=True)
def no_mutation_guard():
    """Every public gradprobe entry point hashes its inputs before and after each call in the
    suite, also when the call raises, and fails the test on any change (tests/_guard.py)."""
    guard = Guard()
    guard.install()
    yield guard
    guard.uninstall()


@pytest.fixture
def quadratic():
    """loss = sum(c * x**3) + x.W.x over a dict, with its exact gradient."""
    rng = np.random.default_rng(0)
    params = {"x": rng.standard_normal(4), "W": rng.standard_normal((4, 4))}

    def loss(p):
        return float(np.sum(p["x"] ** 3) + p["x"] @ p["W"] @ p["x"])

    def grad(p):
        x, W = p["x"], p["W"]
        return {"x": 3 * x**2 + (W + W.T) @ x, "W": np.outer(x, x)}

    return loss, grad, params


@pytest.fixture(scope="module")
def processes():
    """Two worker processes; spawn, as on macOS and Windows: they import the test module afresh."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@pytest.fixture(scope="module")
def threads():
    with ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP's
    waiting threads make a (6, 5) batch norm take 70 ms instead of 15 us."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
