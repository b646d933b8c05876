"""One policy for calling the user's loss: serial, vectorized and on an executor's workers, the
same user error surfaces as the same exception type naming the same argument."""

import threading

import numpy as np
import pytest

import gradprobe as gp

START = {"v": np.array([0.3, -1.2, 0.8])}


class ShapeError(gp.InvalidArgument):
    """A user's own subclass of a gradprobe error: it must arrive as itself, not as a base class."""


def moved(p):
    """Whether `p` (one parameter set, or a batch of them) holds any point but the start."""
    return bool(np.any(np.asarray(p["v"]) != START["v"]))


def value(p):
    """The loss, for one parameter set or a batch of them (reduced over the last axis)."""
    return np.sum(np.asarray(p["v"]) ** 2, axis=-1)


def grad(p):
    return {"v": 2 * p["v"]}


# The losses are at module level, so that worker processes can import them. Each raises while
# probing, away from the start: the start is evaluated here, the probes on the workers.


def raises_invalid_argument(p):
    if moved(p):
        raise gp.InvalidArgument("`f` wants a 2-D input; reshape it first.", argument="f")
    return value(p)


def raises_a_subclass(p):
    if moved(p):
        raise ShapeError("`f` wants a 2-D input; reshape it first.", argument="f")
    return value(p)


def raises_value_error(p):
    if moved(p):
        raise ValueError("no such point")
    return value(p)


def nan_at_start(p):
    return value(p) * np.nan


class NeedsAShape(gp.InvalidArgument):
    """Cannot be unpickled: pickle rebuilds an exception from its message alone."""

    def __init__(self, rows, cols):
        super().__init__(f"`f` wants shape ({rows}, {cols}).", argument="f")


class LockedError(ValueError):
    """Cannot be pickled: it holds a lock."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raises_an_unpicklable_error(p):
    if moved(p):
        raise NeedsAShape(2, 3)
    return value(p)


def raises_an_unpicklable_cause(p):
    if moved(p):
        raise LockedError("no such point")
    return value(p)


def interrupted(p):
    if moved(p):
        raise KeyboardInterrupt
    return value(p)


# the process pool's modes are `slow`: `pytest --fast` leaves them out (conftest.py)
MODES = ["serial", "vectorized", "threads", *(pytest.param(m, marks=pytest.mark.slow) for m in ("processes", "processes-vectorized"))]


def run(loss, mode, request):
    """`gp.check` of `loss` in `mode`; every probe of the full strategy runs where `mode` says."""
    options = {"vectorized": mode.endswith("vectorized")}
    if mode.startswith(("threads", "processes")):
        options["executor"] = request.getfixturevalue(mode.split("-")[0])
    return gp.check(loss, grad, START, strategy="full", **options)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loss, error", [(raises_invalid_argument, gp.InvalidArgument), (raises_a_subclass, ShapeError)], ids=["InvalidArgument", "subclass"])
def test_a_gradprobe_error_from_the_loss_passes_through_as_itself(loss, error, mode, request):
    with pytest.raises(gp.GradprobeError) as info:
        run(loss, mode, request)
    assert type(info.value) is error
    assert info.value.argument == "f"
    assert str(info.value) == "`f` wants a 2-D input; reshape it first."


@pytest.mark.parametrize("mode", MODES)
def test_any_other_exception_becomes_a_user_function_error_naming_the_loss(mode, request):
    with pytest.raises(gp.GradprobeError) as info:
        run(raises_value_error, mode, request)
    assert type(info.value) is gp.UserFunctionError
    assert info.value.argument == "loss"
    assert str(info.value).startswith("`loss` raised ValueError ") and str(info.value).endswith(": no such point")
    assert type(info.value.__cause__) is ValueError and str(info.value.__cause__) == "no such point"


@pytest.mark.parametrize("mode", MODES)
def test_a_nan_at_the_starting_point_is_an_invalid_value(mode, request):
    with pytest.raises(gp.GradprobeError) as info:
        run(nan_at_start, mode, request)
    assert type(info.value) is gp.InvalidValue
    assert info.value.argument == "loss"
    assert str(info.value).startswith("`loss` returned nan at the starting point")


@pytest.mark.parametrize("mode", ["serial", "vectorized", "threads"])
def test_a_keyboard_interrupt_passes_through(mode, request):
    with pytest.raises(KeyboardInterrupt):
        run(interrupted, mode, request)


@pytest.mark.slow
def test_what_cannot_cross_between_processes_arrives_as_near_as_it_can(processes):
    # An error that cannot be unpickled comes back as its nearest gradprobe class...
    with pytest.raises(gp.GradprobeError) as info:
        gp.check(raises_an_unpicklable_error, grad, START, strategy="full", executor=processes)
    assert type(info.value) is gp.InvalidArgument
    assert info.value.argument == "f" and str(info.value) == "`f` wants shape (2, 3)."
    # ...and one whose cause cannot be pickled, as itself without the cause.
    with pytest.raises(gp.GradprobeError) as info:
        gp.check(raises_an_unpicklable_cause, grad, START, strategy="full", executor=processes)
    assert type(info.value) is gp.UserFunctionError
    assert info.value.argument == "loss" and str(info.value).startswith("`loss` raised LockedError ")
    assert info.value.__cause__ is None
