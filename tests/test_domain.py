"""A loss that raises at a probe point is undefined there (outside its domain), as if it were NaN:
finer steps, else that element is inconclusive (`nonfinite`); the other elements are checked as
usual, on every path, and a note says so. A loss that raises at the starting point is broken, as is
one that raises at every probe point, fails once at a point and not the next time, or breaks for
good midway (estimate/_calling.py, `OutsideDomain`)."""

import math
import re

import numpy as np
import pytest

import gradprobe as gp

#: `math.log` elementwise: ValueError ("math domain error") at p <= 0, unlike `np.log`'s NaN.
LOG = np.vectorize(math.log, otypes=[float])
MU = 1e-6  # the barrier's weight: a stronger one near 0 curves faster than the finest step resolves
W = np.array([1.0, 2.0, -1.5, 0.5])
# The first element sits so close to 0 that the first steps of its ladder cross it.
START = {"p": np.array([1e-4, 0.5, 1.3, 0.7])}
NOTE = re.compile(
    r"`loss` raised ValueError at \d+ probe points? \(first: math domain error\); taken as outside its domain there, "
    r"like a NaN value\."
)


# The losses are at module level, so that worker processes can import them. Each takes one
# parameter set or a batch of them (reduced over the last axis).


def barrier(params):
    """A smooth loss plus a log barrier."""
    p = params["p"]
    return np.sum(W * np.sin(p), axis=-1) - MU * np.sum(LOG(p), axis=-1)


def barrier_grad(params):
    p = params["p"]
    return {"p": W * np.cos(p) - MU / p}


def barrier_grad_wrong_at_0(params):
    g = barrier_grad(params)
    g["p"][0] *= 1.5
    return g


def capped(params):
    """Defined only while x[1] <= 1, and x[1] is exactly 1: every step of x[1] leaves the domain on
    one side; no other element's step does."""
    x = np.asarray(params["x"], dtype=float)
    if np.any(x[..., 1] > 1.0):
        raise ValueError("x[1] must be at most 1")
    return np.sum(np.sin(x) * [1.0, 2.0, 3.0], axis=-1) + np.sum(np.asarray(params["b"]) ** 2, axis=-1)


def capped_grad(params):
    return {"x": np.cos(params["x"]) * [1.0, 2.0, 3.0], "b": 2 * params["b"]}


def capped_grad_wrong_at_2(params):
    g = capped_grad(params)
    g["x"][2] *= -1
    return g


CAPPED = {"x": np.array([0.3, 1.0, -0.4]), "b": np.array([0.5, -1.2])}


def defined_at_the_start_only(params):
    if np.any(params["p"] != START["p"]):
        raise ValueError("no such point")
    return barrier(params)


def spoils_its_input_and_raises(params):
    """`barrier`, which spoils the arrays it was given before it raises: a second call at the same
    point must get the point again, and the user's arrays nothing."""
    p = params["p"]
    if np.any(p <= 0):
        p[...] = np.nan
        raise ValueError("math domain error")
    return barrier(params)


def always_raises(params):
    raise ValueError("no such point")


# the process pool's modes are `slow`: `pytest --fast` leaves them out (conftest.py)
SLOW_MODES = ("processes", "processes-vectorized")
MODES = ["serial", "vectorized", "threads", *(pytest.param(m, marks=pytest.mark.slow) for m in SLOW_MODES)]


def run(loss, grad, params, mode, request, **options):
    """`gp.check` with every probe evaluated where `mode` says."""
    options["vectorized"] = mode.endswith("vectorized")
    if mode.startswith(("threads", "processes")):
        options["executor"] = request.getfixturevalue(mode.split("-")[0])
    return gp.check(loss, grad, params, **options)


@pytest.mark.parametrize(
    "strategy, diagnosis",
    [("full", "1 of 4 wrong (element 0, 1.50x)"), ("directional", "1 wrong element (element 0, 1.50x)")],
)
def test_a_log_barrier_near_zero_is_checked_through_the_edge_of_its_domain(strategy, diagnosis):
    report = gp.check(barrier, barrier_grad, START, strategy=strategy)
    assert report.status == "pass", report
    assert any(NOTE.fullmatch(note) for note in report.notes), report.notes

    wrong = gp.check(barrier, barrier_grad_wrong_at_0, START, strategy=strategy)
    assert wrong.status == "fail" and wrong.failing == ("p",), wrong
    assert wrong.tensors["p"].worst[0].index == (0,) and wrong.tensors["p"].diagnosis == diagnosis


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("strategy", ["full", "directional"])
def test_every_path_finds_the_same_points_outside_the_domain(mode, strategy, request):
    serial = gp.check(barrier, barrier_grad_wrong_at_0, START, strategy=strategy).to_dict()
    other = run(barrier, barrier_grad_wrong_at_0, START, mode, request, strategy=strategy).to_dict()
    for key in ("options", "reproduce"):  # they name `executor` and `vectorized`
        del serial[key], other[key]
    assert other == serial and other["status"] == "fail"
    assert any(NOTE.fullmatch(note) for note in other["notes"])


def test_a_boundary_on_one_element_leaves_the_other_elements_checked():
    report = gp.check(capped, capped_grad, CAPPED, strategy="full")
    x = report.tensors["x"]
    assert (report.status, x.status, x.reason) == ("inconclusive", "inconclusive", "nonfinite"), report
    assert (x.counts["nonfinite"], x.counts["pass"]) == (1, 2)
    assert report.tensors["b"].status == "pass"
    note = next(note for note in report.notes if "probe point" in note)
    assert note.startswith("`loss` raised ValueError at ") and "(first: x[1] must be at most 1)" in note

    # A wrong element beside it is still caught, and only it is blamed.
    wrong = gp.check(capped, capped_grad_wrong_at_2, CAPPED, strategy="full")
    x = wrong.tensors["x"]
    assert (wrong.status, wrong.failing, x.counts["fail"], x.counts["nonfinite"]) == ("fail", ("x",), 1, 1)
    assert x.diagnosis == "1 of 3 wrong (element 2, sign flipped)"
    assert wrong.tensors["b"].status == "pass"


def test_torch_a_probability_stepped_below_zero_is_outside_the_domain():
    torch = pytest.importorskip("torch")
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])

    def log_likelihood(p):  # raises ValueError for probabilities outside [0, 1], as torch.bernoulli does
        return torch.distributions.Bernoulli(probs=p, validate_args=True).log_prob(y)

    class DoubledAt3(torch.autograd.Function):
        """The identity, whose backward doubles element 3's gradient."""

        @staticmethod
        def forward(ctx, p):
            return p.clone()

        @staticmethod
        def backward(ctx, g):
            return g * torch.tensor([1.0, 1.0, 1.0, 2.0], dtype=g.dtype)

    def wrong(p):
        return log_likelihood(DoubledAt3.apply(p))

    # So close to 0 that the float64 reference's first steps cross it (`log_prob` with a float32
    # target rounds to float32, which the reference keeps float64: its steps are small).
    p = torch.tensor([1e-6, 0.4, 0.7, 0.2], dtype=torch.float32, requires_grad=True)
    before = p.detach().clone()
    report = gp.torch.check(log_likelihood, p)
    assert report.status == "pass", report
    note = next(note for note in report.notes if "probe point" in note)
    assert note.startswith("`fn` raised ValueError at ") and "(first: Expected parameter probs" in note
    assert note.endswith("...); taken as outside its domain there, like a NaN value.")  # a long message, cut

    failed = gp.torch.check(wrong, p)
    assert failed.status == "fail" and failed.tensors["p"].worst[0].index == (3,), failed
    assert torch.equal(p.detach(), before) and p.grad is None


def test_the_note_names_every_kind_of_error_and_quotes_the_first_line_of_the_first():
    def loss(p):
        if p[0] < 0:
            raise ValueError("below zero\nwith details on a second line")
        if p[1] > 1:
            raise ZeroDivisionError("above one")
        return float(np.sum(np.sin(p)))

    report = gp.check(loss, np.cos, np.array([0.0, 1.0, 0.3]), strategy="full")
    assert "`loss` raised ValueError or ZeroDivisionError at " in str(report)
    note = next(note for note in report.notes if "probe point" in note)
    assert note.endswith(" probe points (first: below zero...); taken as outside its domain there, like a NaN value.")
    # Elements 0 and 1 sit on edges; element 2 is checked.
    assert report.tensors["params"].counts == {"pass": 1, "fail": 0, "kink": 0, "noise": 0, "nonfinite": 2}


def test_a_loss_defined_everywhere_near_the_start_has_no_note():
    report = gp.check(barrier, barrier_grad, {"p": np.array([0.3, 0.5, 1.3, 0.7])})
    assert report.ok and not any("probe point" in note for note in report.notes)


@pytest.mark.parametrize("mode", MODES)
def test_a_loss_that_raises_at_the_starting_point_is_broken(mode, request):
    with pytest.raises(gp.UserFunctionError, match=r"^`loss` raised ValueError at the starting point") as info:
        run(always_raises, barrier_grad, START, mode, request)
    assert info.value.argument == "loss" and type(info.value.__cause__) is ValueError


@pytest.mark.parametrize("mode", MODES)
def test_a_loss_that_raises_at_every_probe_point_is_broken_not_at_an_edge(mode, request):
    # Nothing near the start could be probed, in any direction, at any step: not an edge of the
    # domain but a loss that works only at the point it was given.
    with pytest.raises(gp.UserFunctionError) as info:
        run(defined_at_the_start_only, barrier_grad, START, mode, request)
    assert re.fullmatch(
        r"`loss` raised ValueError at every point it was evaluated at but the starting point \(\d+ points\), the first "
        r"(while probing `p`|in a vectorized batch): no such point",
        str(info.value),
    ), str(info.value)
    assert info.value.argument == "loss"
    assert type(info.value.__cause__) is ValueError and str(info.value.__cause__) == "no such point"


def test_a_grad_that_raises_is_broken():
    def grad(p):
        raise ValueError("math domain error")

    with pytest.raises(gp.UserFunctionError, match="^`grad` raised ValueError") as info:
        gp.check(barrier, grad, START)
    assert info.value.argument == "grad"


def test_a_loss_that_fails_once_or_for_good_midway_is_broken_not_undefined_there():
    # The first time the loss raises at a probe point it is called there again, and at the start.
    calls = []

    def flaky(p):
        calls.append(1)
        if len(calls) == 30:  # a probe point; called again there, it returns a value
            raise OSError("connection reset")
        return barrier(p)

    with pytest.raises(gp.UserFunctionError, match="called there again, it returned a value") as info:
        gp.check(flaky, barrier_grad, {"p": np.array([0.3, 0.5, 1.3, 0.7])})
    assert type(info.value.__cause__) is OSError

    def broken(p):
        calls.append(1)
        if len(calls) > 30:
            raise RuntimeError("the simulation diverged")
        return barrier(p)

    calls.clear()
    with pytest.raises(gp.UserFunctionError, match="it raised at the starting point too") as info:
        gp.check(broken, barrier_grad, START)
    assert str(info.value).startswith("`loss` raised RuntimeError while probing `p`: the simulation diverged (")


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt, gp.InvalidArgument])
def test_what_is_not_the_domain_passes_through_at_a_probe_point(error):
    def loss(p):
        if p["p"][0] <= 0:
            raise error("not a domain")
        return barrier(p)

    with pytest.raises(error, match="not a domain"):
        gp.check(loss, barrier_grad, START)


class OutOfMemoryError(RuntimeError):
    """As torch.cuda.OutOfMemoryError: a RuntimeError."""


@pytest.mark.parametrize(
    "error", [OutOfMemoryError("CUDA out of memory."), RuntimeError("RESOURCE_EXHAUSTED: Out of memory")], ids=["torch", "jax"]
)
def test_running_out_of_memory_is_not_the_edge_of_the_domain(error):  # it raises at once
    def loss(p):
        if p["p"][0] <= 0:
            raise error
        return barrier(p)

    with pytest.raises(gp.UserFunctionError, match=f"^`loss` raised {type(error).__name__} while probing `p`") as info:
        gp.check(loss, barrier_grad, START)
    assert info.value.__cause__ is error


def test_a_vectorized_loss_that_fails_on_batches_fails_as_before():
    # A batch that raised is split, down to the points that raise; when there are none, it is the
    # batch the loss cannot take.
    def one_at_a_time(p):
        if np.ndim(p["p"]) > 1 and len(p["p"]) > 1:
            raise ValueError("one parameter set at a time")
        return barrier(p)

    batch = r"raised ValueError on a batch of 2 parameter sets \(vectorized=True\): one parameter set at a time"
    with pytest.raises(gp.UserFunctionError, match=batch):
        gp.check(one_at_a_time, barrier_grad, {"p": np.array([0.3, 0.5, 1.3, 0.7])}, vectorized=True)


def test_complex_points_are_not_probe_points():
    # The complex step moves no real value: a loss that refuses complex input is refused as before.
    with pytest.raises(gp.InvalidArgument, match="accepts complex parameters"):
        gp.check(barrier, barrier_grad, START, method="complex")


@pytest.mark.parametrize("mode", MODES)
def test_the_users_arrays_stay_untouched_when_the_loss_raises_at_probe_points(mode, request):
    params = {"p": START["p"].copy()}
    params["p"].flags.writeable = False
    before = params["p"].copy()
    report = run(spoils_its_input_and_raises, barrier_grad, params, mode, request)
    assert report.ok and any(NOTE.fullmatch(note) for note in report.notes), report
    assert np.array_equal(params["p"], before) and not params["p"].flags.writeable


@pytest.mark.parametrize("strategy", ["full", "directional"])
def test_a_raise_at_the_budgets_edge_does_not_overrun_it(strategy):
    """Telling a domain edge from a failing loss costs two more calls; a budget that cannot afford
    them takes the raise as the domain's edge (the note still says where) and is never overrun."""
    from gradprobe.strategies._cost import setup_cost
    from gradprobe.strategies._options import validate_options
    from gradprobe.params._params import Params

    options = validate_options(
        strategy=strategy, method="auto", rtol=None, seed=0, shadow=None, batch_size=None, budget=None, executor=None,
        vectorized=False, progress=False, confidence=0.999, probes=None,
    )  # fmt: skip
    edge = {"p": np.array([1e-13, 0.5, 1.3, 0.7])}  # the noise tables' points already cross 0
    minimum = setup_cost(options, strategy, Params(edge), worst=True)
    for budget in range(minimum, minimum + 12):
        report = gp.check(barrier, barrier_grad, edge, strategy=strategy, budget=budget)
        assert report.nfev <= budget
