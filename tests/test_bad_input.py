"""The bad-input catalogue: odd and wrong inputs to every entry point.

Each case ends in one of two ways: a `GradprobeError` whose message names the argument in
backticks and says the fix, or a correct verdict. Never an internal traceback, and never a PASS
for a wrong gradient. Every case has a row in docs/bad_input.md (a test keeps the two in sync).
"""

from __future__ import annotations

import re
from collections import OrderedDict, defaultdict, namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from _counting import Counting

import gradprobe as gp

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_input.md"
X = np.array([1.0, -2.0, 0.5])


@dataclass(frozen=True)
class Case:
    id: str
    entry: str  # "check", "check_vjp", "check_jacobian", "cli", "torch", "jax", "assert_gradients"
    run: Callable[[], None]


CATALOGUE: list[Case] = []


def case(id: str, entry: str = "check"):
    def register(run: Callable[[], None]) -> Callable[[], None]:
        assert id not in {c.id for c in CATALOGUE}, id
        CATALOGUE.append(Case(id, entry, run))
        return run

    return register


# -- helpers ------------------------------------------------------------------------------------




def square(p):
    return float(np.sum(np.asarray(p, dtype=np.float64) ** 2))


def double(p):
    return 2 * np.asarray(p, dtype=np.float64)


class Running:
    """The entry point of the case being run (set by `test_bad_input`)."""

    entry = "check"


#: Arguments of the numpy entry points that a torch or JAX user never passes: an adapter's error
#: must name the user's own (`fn`, `inputs`, `loss_fn`, `args`...).
NUMPY_ONLY = ("grad", "loss", "params")
#: What gradprobe's own code looks like in a message: a closure, a private name, a module path.
INTERNAL = re.compile(r"<locals>|\b_[A-Za-z]\w*\(|\bgradprobe\.\w+\._|\bself\.")


def rejects(call, error, argument, match):
    """`call()` raises `error` (a GradprobeError) naming `argument` in backticks, matching `match`."""
    with pytest.raises(error) as info:
        call()
    e = info.value
    assert isinstance(e, gp.GradprobeError), type(e)
    assert e.argument == argument, (e.argument, str(e))
    message = str(e)
    assert f"`{argument}`" in message, message
    assert re.search(match, message), message
    assert "Traceback" not in message
    assert not INTERNAL.search(message), message
    if Running.entry in ("torch", "jax"):
        assert argument not in NUMPY_ONLY and not any(f"`{name}`" in message for name in NUMPY_ONLY), message
    return e


def rejects_before_work(loss, grad, params, error, argument, match, **options):
    counted = Counting(loss)
    rejects(lambda: gp.check(counted, grad, params, **options), error, argument, match)
    assert counted.calls <= 1  # the starting point at most: no finite-difference work was done


def verdict(report, status, failing=(), *, zero_gradient=False):
    """The report has `status`; exactly the tensors in `failing` fail; a pass means something:
    its resolution is below 1 ("correct to within inf" is no pass), unless the gradient is zero,
    where a relative resolution has no meaning."""
    assert report.status == status, report
    assert {name for name, t in report.tensors.items() if t.status == "fail"} == set(failing), report
    if status == "pass" and not zero_gradient:
        assert 0 <= report.resolution < 1, report
    return report


def honest(report, relative_error):
    """A PASS claims no error above its resolution: a known error must not be larger."""
    if report.status == "pass":
        assert relative_error <= report.resolution, (relative_error, report)
    return report


def check(loss, grad, params, status, failing=(), *, zero_gradient=False, **options):
    return verdict(gp.check(loss, grad, params, **options), status, failing, zero_gradient=zero_gradient)


def needs(name):
    if not hasattr(gp, name):
        pytest.skip(f"gp.{name} is not in this tree yet")
    return getattr(gp, name)


# == gp.check: structure and shape of the gradient =================================================


@case("grad-wrong-shape")
def _():
    rejects_before_work(square, lambda p: np.zeros(4), X, gp.InvalidArgument, "grad", r"shape \(4,\) but the parameter has shape \(3,\)")


@case("grad-transposed")
def _():
    rejects_before_work(square, lambda p: np.ones((3, 2)), np.ones((2, 3)), gp.InvalidArgument, "grad", r"\(transposed\?\)")
    # An n-D gradient with the axes in another order names the orders that fit, and the way back.
    rejects_before_work(square, lambda p: np.ones((3, 4, 2)), np.ones((2, 3, 4)), gp.InvalidArgument, "grad",
                        r"axes in the order \(1, 2, 0\)\? for the first, `g.transpose\(\(2, 0, 1\)\)`")


@case("grad-broadcastable-shape")
def _():  # (3, 1) broadcasts against (3,) but is a different gradient layout: refuse, do not guess
    rejects_before_work(square, lambda p: double(p)[:, None], X, gp.InvalidArgument, "grad", r"shape \(3, 1\)")


@case("grad-list-for-dict")
def _():
    rejects_before_work(lambda p: square(p["a"]), lambda p: [X], {"a": X}, gp.InvalidArgument, "grad", "returned list at `top level` where the parameters have a dict")


@case("grad-dict-for-array")
def _():
    rejects_before_work(square, lambda p: {"params": double(p)}, X, gp.InvalidArgument, "grad", "`params` is a single array/float")


@case("grad-missing-key")
def _():
    rejects_before_work(lambda p: square(p["a"]) + square(p["b"]), lambda p: {"a": X}, {"a": X, "b": X},
                        gp.InvalidArgument, "grad", "no gradient for parameter `b`: expected key `b` or `db`")  # fmt: skip


@case("grad-extra-keys")
def _():  # the course's dZ3, dA2 ... are ignored and listed
    report = check(lambda p: square(p["W"]), lambda p: {"dW": double(p["W"]), "dZ3": 1.0, "cache": "x"}, {"W": X}, "pass")
    assert set(report.ignored) == {"dZ3", "cache"}


@case("grad-list-too-short")
def _():
    rejects_before_work(lambda p: square(p[0]) + square(p[1]), lambda p: [X], [X, X], gp.InvalidArgument, "grad", "returned 1 entries")


@case("grad-list-too-long")
def _():
    rejects_before_work(lambda p: square(p[0]), lambda p: [X, X], [X], gp.InvalidArgument, "grad", "returned 2 entries")


@case("grad-nested-mismatch")
def _():
    params = {"enc": [X, {"w": 1.0}]}
    rejects_before_work(lambda p: 0.0, lambda p: {"enc": [X, [1.0]]}, params, gp.InvalidArgument, "grad", "at `enc.1` where the parameters have a dict")


@case("grad-scalar-for-array")
def _():
    rejects_before_work(square, lambda p: 1.0, X, gp.InvalidArgument, "grad", r"shape \(\) but the parameter has shape \(3,\)")


@case("grad-returns-none")
def _():
    rejects_before_work(square, lambda p: None, X, gp.InvalidArgument, "grad", "returned None for parameter `params`")


@case("grad-none-entry")
def _():
    rejects_before_work(lambda p: square(p["a"]), lambda p: {"a": None}, {"a": X}, gp.InvalidArgument, "grad", "returned None for parameter `a`.*zeros")


@case("grad-dict-at-leaf")
def _():
    rejects_before_work(lambda p: square(p["a"]), lambda p: {"a": {"x": X}}, {"a": X}, gp.InvalidArgument, "grad", r"entry for `a` is a dict; return an array of shape \(3,\)")


@case("grad-generator")
def _():
    rejects_before_work(square, lambda p: (v for v in double(p)), X, gp.InvalidArgument, "grad", "iterator.*np.array\\(list")


@case("grad-generator-function")
def _():
    def grad(p):
        yield double(p)

    rejects_before_work(square, grad, X, gp.InvalidArgument, "grad", "iterator")


@case("grad-string")
def _():
    rejects_before_work(square, lambda p: "2*p", X, gp.InvalidArgument, "grad", "is a str")


@case("grad-object-dtype")
def _():
    rejects_before_work(square, lambda p: np.array([1.0, None, 2.0], dtype=object), X, gp.InvalidArgument, "grad", "dtype object; return a float array")


@case("grad-bool-dtype")
def _():
    rejects_before_work(square, lambda p: np.ones(3, dtype=bool), X, gp.InvalidArgument, "grad", "dtype bool")


@case("grad-complex")
def _():  # a complex gradient for a real parameter (complex parameters: tests/test_complex.py)
    rejects_before_work(square, lambda p: double(p) + 0j, X, gp.InvalidArgument, "grad", "is complex .* but the parameter is real")


@case("grad-real-for-complex-params")
def _():  # read as an imaginary part of zero: the dropped part fails, the real part passes
    z = X + 1j * X[::-1]
    loss = lambda p: float(np.sum(np.abs(p) ** 2))
    report = check(loss, lambda p: 2 * p.real, z, "fail", ["params"])
    assert report.tensors["params"].shape == (3,)


@case("grad-ragged-list")
def _():
    rejects_before_work(square, lambda p: [[1.0, 2.0], [3.0]], X, gp.InvalidArgument, "grad", "cannot be read as an array")


@case("grad-nan")
def _():
    rejects_before_work(square, lambda p: np.array([2.0, np.nan, 1.0]), X, gp.InvalidValue, "grad", "NaN or inf for `params`")


@case("grad-inf")
def _():
    rejects_before_work(square, lambda p: np.array([2.0, -np.inf, 1.0]), X, gp.InvalidValue, "grad", "NaN or inf")


@case("grad-raises")
def _():
    e = rejects(lambda: gp.check(square, lambda p: p["missing"], X), gp.UserFunctionError, "grad", "raised IndexError")
    assert isinstance(e.__cause__, IndexError)  # the user's own traceback is kept


@case("grad-integer-dtype")
def _():  # an integer gradient that is right is right
    check(lambda p: float(np.sum(3 * p)), lambda p: np.full(3, 3, dtype=np.int64), X, "pass")
    check(lambda p: float(np.sum(3 * p)), lambda p: np.full(3, 2, dtype=np.int64), X, "fail", ["params"])


@case("grad-list-for-array")
def _():
    check(square, lambda p: list(double(p)), X, "pass")
    check(square, lambda p: list(3 * p), X, "fail", ["params"])


@case("grad-array-for-list-of-floats")
def _():
    check(square, double, [1.0, -2.0], "pass")
    check(square, lambda p: 3 * np.asarray(p), [1.0, -2.0], "fail", ["0", "1"])


@case("grad-dict-with-int-keys")
def _():
    check(lambda p: square(p[0]) + square(p[7]), lambda p: {0: double(p[0]), 7: double(p[7])}, {0: X, 7: 1.5}, "pass")


@case("grad-size-1-for-scalar")
def _():
    check(lambda t: t**3, lambda t: np.array([3 * t**2]), 1.5, "pass")


@case("grad-returns-view-of-input")
def _():
    check(lambda p: square(p) / 2, lambda p: p, X, "pass")
    check(lambda p: square(p) / 2, lambda p: p[::-1], X, "fail", ["params"])


@case("grad-mutates-its-input")
def _():
    def grad(p):
        g = double(p)
        p *= 0  # its own copy: the check and the user's X are unaffected
        return g

    check(square, grad, X, "pass")


@case("grad-non-deterministic")
def _():
    rng = np.random.default_rng(0)
    report = check(square, lambda p: double(p) + 1e-13 * rng.standard_normal(3), X, "pass")
    assert any("`grad` is non-deterministic" in note for note in report.notes)


@case("grad-framework-tensor")
def _():
    class FakeTensor:
        pass

    FakeTensor.__module__ = "torch"
    rejects_before_work(square, lambda p: FakeTensor(), X, gp.InvalidArgument, "grad", "gp.torch.check")


# == gp.check: parameters ==========================================================================


@case("params-int-dtype")
def _():
    rejects_before_work(square, double, np.arange(3), gp.InvalidArgument, "params", r"dtype int64.*astype\(np.float64\)")


@case("params-bool-dtype")
def _():
    rejects_before_work(square, double, np.array([True, False]), gp.InvalidArgument, "params", "dtype bool")


@case("params-bool-scalar")
def _():
    rejects_before_work(square, double, {"flag": True}, gp.InvalidArgument, "params", "`flag` is a bool.*Pass a float")


@case("params-object-dtype")
def _():
    rejects_before_work(square, double, np.array([1.0, "a"], dtype=object), gp.InvalidArgument, "params", "dtype object")


@case("params-complex")
def _():  # complex64 and complex128 are checked through their parts; clongdouble is refused
    loss = lambda p: float(np.sum(np.abs(p) ** 2))
    for dtype in (np.complex64, np.complex128):
        check(loss, lambda p: 2 * p, (X + 1j).astype(dtype), "pass")
    rejects_before_work(loss, lambda p: 2 * p, (X + 1j).astype(np.clongdouble), gp.InvalidArgument, "params",
                        r"complex64 and complex128.*astype\(np.complex128\)")


@case("params-complex-method-complex")
def _():
    rejects_before_work(lambda p: float(np.sum(np.abs(p) ** 2)), lambda p: 2 * p, {"w": X, "z": X + 1j},
                        gp.InvalidArgument, "method", "complex step.*`z` already are.*method='auto'", method="complex")


@case("params-float128")
def _():
    rejects_before_work(square, double, X.astype(np.longdouble), gp.InvalidArgument, "params", "float16, float32 or float64")


@case("params-structured-dtype")
def _():
    rejects_before_work(square, double, np.zeros(2, dtype=[("a", float)]), gp.InvalidArgument, "params", "gradients need floating-point")


@case("params-datetime")
def _():
    rejects_before_work(square, double, np.array(["2020-01-01"], dtype="datetime64[D]"), gp.InvalidArgument, "params", "datetime64")


@case("params-string-array")
def _():
    rejects_before_work(square, double, np.array(["1.0", "2.0"]), gp.InvalidArgument, "params", "dtype <U3")


@case("params-string")
def _():
    rejects_before_work(square, double, "1.0", gp.InvalidArgument, "params", "is a str")


@case("params-none")
def _():
    rejects_before_work(square, double, None, gp.InvalidArgument, "params", "is None")


@case("params-none-entry")
def _():
    rejects_before_work(square, double, {"W": X, "b": None}, gp.InvalidArgument, "params", "entry `b` is None")


@case("params-generator")
def _():
    rejects_before_work(square, double, (v for v in X), gp.InvalidArgument, "params", "iterator.*pass a list or an array")


@case("params-set")
def _():
    rejects_before_work(square, double, {1.0, 2.0}, gp.InvalidArgument, "params", "is a set")


@case("params-empty-array")
def _():
    rejects_before_work(square, double, np.zeros((0, 3)), gp.InvalidValue, "params", r"empty \(shape \(0, 3\)\).*Remove it")


@case("params-empty-dict")
def _():
    rejects_before_work(square, double, {}, gp.InvalidValue, "params", "holds no arrays")


@case("params-empty-list")
def _():
    rejects_before_work(square, double, {"layers": []}, gp.InvalidValue, "params", "holds no arrays")


@case("params-nan")
def _():
    rejects_before_work(square, double, np.array([np.nan, 1.0]), gp.InvalidValue, "params", "NaN or inf.*finite point")


@case("params-inf")
def _():
    rejects_before_work(square, double, {"W": np.array([1.0, -np.inf])}, gp.InvalidValue, "params", "`W` holds NaN or inf")


@case("params-cycle")
def _():
    cyclic = [X]
    cyclic.append(cyclic)
    rejects_before_work(square, double, cyclic, gp.InvalidArgument, "params", "contains itself at `1`")


@case("params-too-deep")
def _():
    deep = X
    for _ in range(500):
        deep = [deep]
    rejects_before_work(square, double, deep, gp.InvalidArgument, "params", "nested more than 100 levels")


@case("params-duplicate-names")
def _():
    rejects_before_work(square, double, {1: X, "1": X}, gp.InvalidArgument, "params", "two entries named `1`")
    rejects_before_work(square, double, {"a.b": X, "a": {"b": X}}, gp.InvalidArgument, "params", "two entries named `a.b`")


@case("params-masked-array")
def _():
    masked = np.ma.masked_array(X, mask=[0, 1, 0])
    rejects_before_work(square, double, masked, gp.InvalidArgument, "params", r"masked array.*x.filled")


@case("params-framework-tensor")
def _():
    class FakeArray:
        pass

    FakeArray.__module__ = "jaxlib.xla_extension"
    rejects_before_work(square, double, {"w": FakeArray()}, gp.InvalidArgument, "params", "gp.jax.check")


@case("params-with-empty-container")
def _():  # an empty list inside the structure holds no parameter, but the gradient mirrors it
    check(lambda p: p[1] ** 2, lambda p: [[], 2 * p[1]], [[], 0.5], "pass")
    rejects_before_work(lambda p: p[1] ** 2, lambda p: [2 * p[1]], [[], 0.5], gp.InvalidArgument, "grad", "returned 1 entries .* parameters have 2")


@case("params-zero-dimensional")
def _():
    report = check(lambda t: float(t**3), lambda t: 3 * t**2, np.array(1.5), "pass")
    assert report.tensors["params"].shape == ()
    check(lambda t: float(t**3), lambda t: 2 * t**2, np.array(1.5), "fail", ["params"])


@case("params-python-float-and-int")
def _():
    check(lambda t: t**3, lambda t: 3 * t**2, 1.5, "pass")
    check(lambda t: t**3, lambda t: 3 * t**2, 2, "pass")  # a Python int is a number: promoted to float
    check(lambda t: t**3, lambda t: 3 * t, 2, "fail", ["params"])


@case("params-numpy-scalar")
def _():
    check(lambda t: float(t) ** 3, lambda t: 3 * float(t) ** 2, np.float32(1.5), "pass")


@case("params-list-of-floats")
def _():
    report = check(lambda p: p[0] ** 2 * p[1], lambda p: [2 * p[0] * p[1], p[0] ** 2], [1.5, -2.0], "pass")
    assert list(report.tensors) == ["0", "1"]


@case("params-nested-lists")
def _():  # [[1, 2], [3, 4]] is four named floats; a (2, 2) array of gradients matches it
    check(square, double, [[1.0, 2.0], [3.0, 4.0]], "pass")


@case("params-non-contiguous")
def _():
    x = np.arange(12.0).reshape(3, 4)[:, ::2] / 10
    check(square, double, x, "pass")
    check(square, lambda p: double(p).T.copy().T * [1, 2], x, "fail", ["params"])


@case("params-fortran-order")
def _():
    weights = np.arange(6.0).reshape(2, 3)
    x = np.asfortranarray(np.linspace(-1, 1, 6).reshape(2, 3))
    check(lambda p: float(np.sum(weights * p**2)), lambda p: 2 * weights * p, x, "pass")
    check(lambda p: float(np.sum(weights * p**2)), lambda p: (2 * weights * p).T.reshape(2, 3), x, "fail", ["params"])


@case("params-read-only")
def _():
    x = X.copy()
    x.setflags(write=False)

    def loss(p):
        assert p.flags.writeable  # the loss gets its own writeable copy
        p += 0.0
        return square(p)

    check(loss, double, x, "pass")
    assert not x.flags.writeable


@case("params-namedtuple")
def _():
    Layer = namedtuple("Layer", "w b")
    params = Layer(X, 0.5)

    def loss(p):
        assert isinstance(p, Layer)
        return square(p.w) + p.b**2

    check(loss, lambda p: Layer(double(p.w), 2 * p.b), params, "pass")


@case("params-dict-subclasses")
def _():
    class AttrDict(dict):
        __getattr__ = dict.__getitem__

    for params in (OrderedDict(w=X), defaultdict(list, w=X), AttrDict(w=X)):
        kind = type(params)

        def loss(p, kind=kind):
            assert type(p) is kind  # the loss sees the type it was given
            return square(p["w"])

        check(loss, lambda p: {"w": double(p["w"])}, params, "pass")


@case("params-aliased-array")
def _():  # one array under two names: two parameters, each with its own gradient
    shared = X.copy()

    def loss(p):
        assert p["a"] is not p["b"]  # fresh copies: moving one does not move the other
        return square(p["a"]) + 3 * float(np.sum(p["b"]))

    check(loss, lambda p: {"a": double(p["a"]), "b": np.full(3, 3.0)}, {"a": shared, "b": shared}, "pass")
    # the gradient of "the one array" (the sum of both) given for each entry is wrong for each
    total = lambda p: {"a": double(p["a"]) + 3, "b": double(p["b"]) + 3}  # noqa: E731
    check(loss, total, {"a": shared, "b": shared}, "fail", ["a", "b"])


@case("params-overlapping-views")
def _():
    M = np.arange(6.0).reshape(2, 3) / 4
    params = {"M": M, "row": M[0]}
    check(lambda p: square(p["M"]) + float(np.sum(np.sin(p["row"]))), lambda p: {"M": double(p["M"]), "row": np.cos(p["row"])}, params, "pass")


@case("params-float16")
def _():
    x = X.astype(np.float16)
    check(lambda p: float(np.sum(p.astype(np.float64) ** 3)), lambda p: 3 * p.astype(np.float64) ** 2, x, "pass")
    check(lambda p: float(np.sum(p.astype(np.float64) ** 3)), lambda p: 3.3 * p.astype(np.float64) ** 2, x, "fail", ["params"])


@case("params-float32-loss-in-float32")
def _():
    x = np.linspace(-1, 1, 7).astype(np.float32)
    check(lambda p: np.sum(np.tanh(p) ** 2), lambda p: 2 * np.tanh(p) * (1 - np.tanh(p) ** 2), x, "pass")
    check(lambda p: np.sum(np.tanh(p) ** 2), lambda p: 2 * np.tanh(p), x, "fail", ["params"])


@case("params-huge-1e30")
def _():
    x = X * 1e30
    check(lambda p: float(np.sum(np.sin(p / 1e30)) * 1e30), lambda p: np.cos(p / 1e30), x, "pass")
    check(lambda p: float(np.sum(np.sin(p / 1e30)) * 1e30), lambda p: 1.01 * np.cos(p / 1e30), x, "fail", ["params"])
    check(square, double, x, "pass")
    check(square, lambda p: 2.02 * p, x, "fail", ["params"])


@case("params-tiny-1e-30")
def _():
    x = X * 1e-30
    check(lambda p: float(np.sum(np.sin(p * 1e30))), lambda p: 1e30 * np.cos(p * 1e30), x, "pass")
    check(lambda p: float(np.sum(np.sin(p * 1e30))), lambda p: 1.01e30 * np.cos(p * 1e30), x, "fail", ["params"])
    check(lambda p: float(np.sum(p)), lambda p: np.ones(3), x, "pass")
    check(lambda p: float(np.sum(p)), lambda p: np.full(3, 1.01), x, "fail", ["params"])


@case("params-subnormal")
def _():
    x = np.array([3e-310, -1e-310, 2e-310])
    weights = np.array([1.0, 2.0, -3.0])
    check(lambda p: float(weights @ p), lambda p: weights, x, "pass")
    check(lambda p: float(weights @ p), lambda p: 1.5 * weights, x, "fail", ["params"])


@case("loss-underflows")
def _():  # sum(p**2) is exactly 0 at 3e-310 and a 3-digit subnormal at 1e-160
    for x in (np.array([3e-310, 2e-310]), np.array([1e-160, 2e-160])):
        right = gp.check(square, double, x)
        assert right.status != "fail" and (right.status != "pass" or right.resolution < 1), right
        assert gp.check(square, lambda p: 3 * p, x).status != "pass"  # never both 2p and 3p


@case("loss-cancels-to-a-staircase")
def _():  # log(1 + y) for y ~ 1e-12: the computed loss moves in steps of 1e-16, flat between them
    x = np.array([0.01])

    def loss(p):
        h = p
        for _ in range(3):
            h = np.log(1 + h * h)
        return float(np.sum(h))

    def grad(p):
        h, slope = p, np.ones_like(p)
        for _ in range(3):
            slope = slope * 2 * h / (1 + h * h)
            h = np.log(1 + h * h)
        return slope

    report = gp.check(loss, grad, x)
    assert report.status != "fail", report  # the gradient is exact: at most inconclusive
    assert gp.check(loss, lambda p: 3 * grad(p), x).status != "pass"


@case("loss-oscillates-between-floats")
def _():  # sin near 1e30: neighbouring floats are 1e14 apart, many periods: no derivative to see
    x = np.array([1e30, -3e30])
    report = gp.check(lambda p: float(np.sum(np.sin(p))), lambda p: np.cos(p), x)
    assert report.status != "fail", report  # the gradient is exact: at most inconclusive


@case("float16-zeros-beside-huge")
def _():  # an all-zero float16 tensor next to a 1e30 float: its steps must stay float16-sized
    params = {"h": np.zeros(3, dtype=np.float16), "big": 1e30}
    loss = lambda p: float(np.sum(p["h"].astype(np.float64) ** 3) + p["big"])  # noqa: E731
    report = gp.check(loss, lambda p: {"h": np.zeros(3), "big": 1.0}, params)
    assert report.status != "fail", report
    assert gp.check(loss, lambda p: {"h": np.ones(3), "big": 1.0}, params).status != "pass"


@case("float16-large-values")
def _():  # float16 parameters near 1e3: probes must not step past float16's range
    x = np.array([1493.0, -824.0], dtype=np.float16)
    for scale in (1000.0, 1.0):  # tanh(x / 1000) varies; tanh(x) is flat (gradient 0 in float64)
        loss = lambda p: float(np.sum(np.exp(np.tanh(p.astype(np.float64) / scale))))  # noqa: E731
        grad = lambda p: np.exp(np.tanh(p.astype(np.float64) / scale)) * (1 - np.tanh(p.astype(np.float64) / scale) ** 2) / scale  # noqa: E731
        assert gp.check(loss, grad, x).status != "fail"
        if scale > 1:
            assert gp.check(loss, lambda p: 2 * grad(p), x).status != "pass"


@case("params-near-1e150")
def _():  # tanh saturates and x**2 nears the float64 limit: no overflow inside the check
    x = np.array([1.77e150, 9.3e148])
    report = gp.check(lambda p: float(np.sum(np.tanh(p / 1e150))), lambda p: (1 - np.tanh(p / 1e150) ** 2) / 1e150, x)
    assert report.status != "fail", report
    assert gp.check(square, double, x).status != "fail"


@case("subnormal-beside-float16")
def _():  # one structure mixing subnormal float64 and float16 parameters
    params = (np.array([3.6e-312, -1.07e-310]), np.array(0.9873, dtype=np.float16))
    loss = lambda p: float(np.sum(p[0] ** 3) + float(p[1]) ** 3)  # noqa: E731
    report = gp.check(loss, lambda p: (3 * p[0] ** 2, 3 * float(p[1]) ** 2), params)
    assert report.status != "fail", report
    assert report.tensors["1"].status == "pass"
    assert gp.check(loss, lambda p: (3 * p[0] ** 2, 6 * float(p[1]) ** 2), params).tensors["1"].status == "fail"


@case("strategy-directional-invisible-tensor", "check-directional")
def _():  # W0's gradient, 3e-60, is invisible in a loss of 0.125: no strategy may PASS it
    loss = lambda p: float(p["W0"] ** 3 + p["W1"] ** 3)  # noqa: E731
    params = {"W0": 1e-30, "W1": 0.5}
    for strategy in ("full", "directional"):
        for factor in (3, 6):
            report = gp.check(loss, lambda p: {"W0": factor * p["W0"] ** 2, "W1": 3 * p["W1"] ** 2}, params, strategy=strategy)
            assert report.tensors["W0"].status != "pass" or report.tensors["W0"].resolution < 1, report


@case("strategy-directional-subnormal", "check-directional")
def _():
    x = np.array([1.9e-310, 1.5e-310, -1.8e-310])
    for strategy in ("full", "directional"):
        report = gp.check(lambda p: float(np.sum(np.tanh(p))), lambda p: 1 - np.tanh(p) ** 2, x, strategy=strategy)
        verdict(report, "pass")
        assert gp.check(lambda p: float(np.sum(np.tanh(p))), lambda p: 2 - 2 * np.tanh(p) ** 2, x, strategy=strategy).status == "fail"


@case("loss-huge-values")
def _():  # the loss near 1e300: no overflow inside the check
    check(lambda p: float(np.sum(p**2)) * 1e300, lambda p: 2e300 * p, X, "pass")
    check(lambda p: float(np.sum(p**2)) * 1e300, lambda p: 3e300 * p, X, "fail", ["params"])


@case("loss-tiny-values")
def _():
    check(lambda p: float(np.sum(p**2)) * 1e-300, lambda p: 2e-300 * p, X, "pass")
    check(lambda p: float(np.sum(p**2)) * 1e-300, lambda p: 3e-300 * p, X, "fail", ["params"])


@case("gradient-huge-range")
def _():  # elements of one tensor 1e12 apart: the small ones are still judged
    scales = np.array([1e6, 1.0, 1e-6])
    loss = lambda p: float(np.sum(scales * p**2))  # noqa: E731
    check(loss, lambda p: 2 * scales * p, X, "pass")
    check(loss, lambda p: 2 * scales * p * [1, 2, 1], X, "fail", ["params"])
    # the smallest element doubled is an error of 5e-13 of the tensor's norm: FAIL, or a PASS
    # whose stated resolution admits it
    exact = 2 * scales * X
    honest(gp.check(loss, lambda p: 2 * scales * p * [1, 1, 2], X), float(abs(exact[2]) / np.linalg.norm(exact)))


@case("zero-gradient-at-a-minimum")
def _():
    check(square, double, np.zeros(3), "pass", zero_gradient=True)
    check(square, lambda p: np.ones(3), np.zeros(3), "fail", ["params"])


@case("constant-loss")
def _():
    check(lambda p: 4.0, lambda p: np.zeros(3), X, "pass", zero_gradient=True)
    check(lambda p: 4.0, lambda p: np.full(3, 1e-3), X, "fail", ["params"])


# == gp.check: the loss's return value ===============================================================


@case("loss-returns-none")
def _():
    rejects_before_work(lambda p: None, double, X, gp.InvalidArgument, "loss", "returned None; return the loss as a float")


@case("loss-forgot-return")
def _():
    def loss(p):
        np.sum(p**2)  # no return: a classic

    rejects_before_work(loss, double, X, gp.InvalidArgument, "loss", "returned None")


@case("loss-returns-string")
def _():
    rejects_before_work(lambda p: "1.0", double, X, gp.InvalidArgument, "loss", "returned str")
    rejects_before_work(lambda p: b"1.0", double, X, gp.InvalidArgument, "loss", "returned bytes")


@case("loss-returns-tuple")
def _():
    rejects_before_work(lambda p: (square(p), {"cache": 1}), double, X, gp.InvalidArgument, "loss", r"tuple of 2.*f\(p\)\[0\]")


@case("loss-returns-array")
def _():
    rejects_before_work(lambda p: p**2, double, X, gp.InvalidArgument, "loss", r"array of shape \(3,\), not a scalar.*\.sum\(\).*check_vjp")


@case("loss-returns-dict")
def _():
    rejects_before_work(lambda p: {"loss": square(p)}, double, X, gp.InvalidArgument, "loss", "returned dict")


@case("loss-returns-bool")
def _():
    rejects_before_work(lambda p: square(p) > 0, double, X, gp.InvalidArgument, "loss", "returned bool")
    rejects_before_work(lambda p: np.sum(p) > 0, double, X, gp.InvalidArgument, "loss", "returned bool")


@case("loss-returns-complex")
def _():
    rejects_before_work(lambda p: square(p) + 1j, double, X, gp.InvalidArgument, "loss", "complex number; a loss must be real")


@case("loss-generator-function")
def _():
    def loss(p):
        yield square(p)

    rejects_before_work(loss, double, X, gp.InvalidArgument, "loss", "iterator.*use `return`")


@case("loss-returns-size-1-array")
def _():  # a (1,) or (1, 1) array is one number: accepted
    check(lambda p: np.sum(p**2, keepdims=True), double, X, "pass")
    check(lambda p: np.atleast_2d(np.sum(p**2)), lambda p: 3 * p, X, "fail", ["params"])


@case("loss-returns-view-of-input")
def _():
    check(lambda p: p[1:2], lambda p: np.array([0.0, 1.0, 0.0]), X, "pass")
    check(lambda p: p[1:2], double, X, "fail", ["params"])


@case("loss-returns-integer")
def _():  # an integer-valued loss is piecewise constant: zero gradient is right, anything else wrong
    check(lambda p: 3, lambda p: np.zeros(3), X, "pass", zero_gradient=True)
    check(lambda p: int(np.sum(p > 0)), double, X, "fail", ["params"])


@case("loss-nan-at-start")
def _():
    rejects_before_work(lambda p: float("nan"), double, X, gp.InvalidValue, "loss", "returned nan at the starting point")


@case("loss-inf-at-start")
def _():
    rejects_before_work(lambda p: np.inf, double, X, gp.InvalidValue, "loss", "returned inf at the starting point")
    overflowing = lambda p: sum(v * v for v in p.tolist())  # noqa: E731  (Python floats overflow quietly)
    rejects_before_work(overflowing, double, X * 1e200, gp.InvalidValue, "loss", "returned inf")


@case("loss-nan-near-the-point")
def _():  # log at the edge of its domain: the probes step outside, which is inconclusive, not a pass
    x = np.array([1e-300, 1.0])

    def loss(p):
        with np.errstate(invalid="ignore"):
            return float(np.sum(np.sqrt(p)))

    report = gp.check(loss, lambda p: 0.5 / np.sqrt(p), x)
    assert report.status in ("inconclusive", "pass") and report.tensors["params"].status != "fail"
    assert report.status == "inconclusive" or report.resolution < 1
    assert gp.check(loss, lambda p: 0.7 / np.sqrt(p), x).status == "fail"


@case("loss-raises-at-start")
def _():
    e = rejects(lambda: gp.check(lambda p: 1 / 0, double, X), gp.UserFunctionError, "loss", "raised ZeroDivisionError at the starting point")
    assert isinstance(e.__cause__, ZeroDivisionError)


@case("loss-raises-midway")
def _():
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("out of memory on the GPU")
        return square(p)

    def grad(p):
        return {"W": double(p["W"])}

    e = rejects(lambda: gp.check(lambda p: loss(p["W"]), grad, {"W": X}), gp.UserFunctionError, "loss", "raised RuntimeError .*`W`: out of memory")
    assert isinstance(e.__cause__, RuntimeError)


@case("loss-keyboard-interrupt")
def _():  # a Ctrl-C is the user's: it goes through untouched, not wrapped in an error
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return square(p)

    with pytest.raises(KeyboardInterrupt):
        gp.check(loss, double, X)


@case("loss-mutates-its-input")
def _():
    def loss(p):
        p *= 2  # in place, on its own copy
        return square(p)

    check(loss, lambda p: 8 * p, X, "pass")
    check(loss, double, X, "fail", ["params"])


@case("loss-non-deterministic")
def _():
    rng = np.random.default_rng(0)
    report = gp.check(lambda p: square(p) + 1e-10 * rng.standard_normal(), double, X)
    assert report.status == "pass" and any("non-deterministic" in n for n in report.notes)
    noisy = gp.check(lambda p: square(p) + 1e-10 * rng.standard_normal(), lambda p: 2.5 * p, X)
    assert noisy.status == "fail"


@case("loss-kink-at-the-point")
def _():
    report = gp.check(lambda p: float(np.sum(np.abs(p))), lambda p: np.sign(p), np.array([0.0, 1.0, -2.0]))
    assert report.status != "fail" and report.tensors["params"].kinks == ((0,),)
    assert gp.check(lambda p: float(np.sum(np.abs(p))), lambda p: 2 * np.sign(p), np.array([0.0, 1.0, -2.0])).status == "fail"


@case("loss-returns-0d-tensor")
def _():
    torch = pytest.importorskip("torch")
    check(lambda p: torch.tensor(p, requires_grad=True).pow(2).sum(), double, X, "pass")


# == gp.check: the callables and the options =======================================================


@case("loss-not-callable")
def _():
    rejects(lambda: gp.check(3.0, double, X), gp.InvalidArgument, "loss", "must be callable, got float")
    rejects(lambda: gp.check(None, double, X), gp.InvalidArgument, "loss", "must be callable, got NoneType")


@case("grad-not-callable")
def _():
    rejects(lambda: gp.check(square, double(X), X), gp.InvalidArgument, "grad", "must be callable, got ndarray")


@case("arguments-swapped")
def _():  # check(params, loss, grad): the array is not callable
    rejects(lambda: gp.check(X, square, double), gp.InvalidArgument, "loss", "must be callable")


@case("options-invalid")
def _():
    for option, value, message in [
        ("strategy", "fast", "`strategy` must be one of"),
        ("method", "forward", "`method` must be one of"),
        ("rtol", -1.0, r"`rtol` must be a number in \[0, 1\)"),
        ("rtol", float("nan"), "`rtol` must be a number"),
        ("seed", -3, "`seed` must be a non-negative int"),
        ("seed", 1.5, "`seed` must be a non-negative int"),
        ("shadow", "yes", "`shadow` must be True, False or None"),
        ("batch_size", 0, "`batch_size` must be a positive int"),
    ]:
        rejects_before_work(square, double, X, gp.GradprobeError, option, message, **{option: value})


@case("probes-with-full")
def _():  # once silently ignored
    rejects_before_work(square, double, X, gp.InvalidArgument, "probes", "strategy='full' does not use", strategy="full",
                        probes=3)


@case("points-invalid")
def _():  # a count of points: an int of at least 1 (1 is your point alone), never a bool or a float
    for value in (0, -1, True, 2.5, "3", None):
        rejects_before_work(square, double, X, gp.InvalidArgument, "points", r"`points` must be a positive int.*points=3", points=value)


@case("method-complex-loss-not-analytic")
def _():
    rejects(lambda: gp.check(lambda p: float(np.sum(p**2)), double, X, method="complex"), gp.InvalidArgument, "method", "complex")
    rejects(lambda: gp.check(lambda p: np.sum(np.abs(p) ** 2), double, X, method="complex"), gp.InvalidArgument, "method", "imaginary part")


@case("method-complex-float32")
def _():
    x = X.astype(np.float32)
    check(lambda p: np.sum(p**3), lambda p: 3 * p.astype(np.float64) ** 2, x, "pass", method="complex")
    check(lambda p: np.sum(p**3), lambda p: 3.3 * p.astype(np.float64) ** 2, x, "fail", ["params"], method="complex")


# == gp.check_vjp and gp.check_jacobian ============================================================

A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])


def f_lin(x):
    return A @ np.sin(x)


def vjp_lin(x, v):
    return np.cos(x) * (A.T @ v)


X2 = np.array([0.1, 0.2])


@case("vjp-correct-and-wrong", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    verdict(check_vjp(f_lin, vjp_lin, X2), "pass")
    verdict(check_vjp(f_lin, lambda x, v: np.cos(x) * (A[:2] @ v[:2]), X2), "fail", ["x"])


@case("vjp-not-callable", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp("f", vjp_lin, X2), gp.InvalidArgument, "f", "must be callable")
    rejects(lambda: check_vjp(f_lin, None, X2), gp.InvalidArgument, "vjp", "must be callable")


@case("hvp-not-callable", "check_hvp")
def _():
    rejects(lambda: gp.check_hvp("grad", vjp_lin, X2), gp.InvalidArgument, "grad", "must be callable")
    rejects(lambda: gp.check_hvp(f_lin, None, X2), gp.InvalidArgument, "hvp", "must be callable")


@case("vjp-bad-x", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp(f_lin, vjp_lin, np.arange(2)), gp.InvalidArgument, "x", "dtype int64")
    rejects(lambda: check_vjp(f_lin, vjp_lin, np.zeros(0)), gp.InvalidValue, "x", "empty")


@case("vjp-f-returns-none", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp(lambda x: None, vjp_lin, X2), gp.InvalidArgument, "f", "")


@case("vjp-f-returns-strings", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp(lambda x: ["a", "b"], vjp_lin, X2), gp.InvalidArgument, "f", "return float or complex64/complex128")


@case("vjp-f-returns-input", "check_vjp")
def _():  # the identity map, returned as the input array itself: J^T v = v
    check_vjp = needs("check_vjp")
    verdict(check_vjp(lambda x: x, lambda x, v: v, X2), "pass")
    verdict(check_vjp(lambda x: x[::-1], lambda x, v: v, X2), "fail", ["x"])


@case("vjp-returns-none", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp(f_lin, lambda x, v: None, X2), gp.InvalidArgument, "vjp", "returned None")


@case("vjp-wrong-shape", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp(f_lin, lambda x, v: A.T @ v @ np.ones((2, 3)), X2), gp.InvalidArgument, "vjp", r"shape \(3,\)")


@case("vjp-raises", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    e = rejects(lambda: check_vjp(f_lin, lambda x, v: x @ v, X2), gp.UserFunctionError, "vjp", "raised ValueError")
    assert isinstance(e.__cause__, ValueError)


@case("vjp-f-raises-midway", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) > 3:
            raise ArithmeticError("boom")
        return f_lin(x)

    e = rejects(lambda: check_vjp(f, vjp_lin, X2), gp.UserFunctionError, "f", "raised ArithmeticError")
    assert isinstance(e.__cause__, ArithmeticError)


@case("vjp-output-shape-changes", "check_vjp")
def _():
    check_vjp = needs("check_vjp")

    def f(x):
        return f_lin(x) if np.all(x == X2) else f_lin(x)[:2]

    rejects(lambda: check_vjp(f, vjp_lin, X2), gp.InvalidArgument, "f", "must not depend on the point")


@case("vjp-scalar-output", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    verdict(check_vjp(lambda x: float(np.sum(x**2)), lambda x, v: 2 * x * v, X2), "pass")


@case("vjp-nan-output", "check_vjp")
def _():
    check_vjp = needs("check_vjp")
    rejects(lambda: check_vjp(lambda x: f_lin(x) * np.nan, vjp_lin, X2), gp.InvalidValue, "f", "")


@case("vjp-complex-output", "check_vjp")
def _():  # a complex f through Re <v, f(x)>: vjp(x, v) returns what torch.autograd.grad(f(x), x, v) does
    check_vjp = needs("check_vjp")
    z = np.array([1 + 2j, 0.5 - 0.3j])
    verdict(check_vjp(lambda x: x**2, lambda x, v: np.conj(2 * x) * v, z), "pass")
    verdict(check_vjp(lambda x: x**2, lambda x, v: 2 * x * v, z), "fail", ["x"])  # J v: no conjugate
    verdict(check_vjp(lambda x: np.abs(x) ** 2 * x, lambda x, v: 2 * np.abs(x) ** 2 * v + x * x * np.conj(v), z), "pass")
    rejects(lambda: check_vjp(lambda x: x.astype(np.clongdouble), lambda x, v: v, z), gp.InvalidArgument, "f",
            "complex64/complex128")


@case("jacobian-transposed", "check_jacobian")
def _():
    check_jacobian = needs("check_jacobian")
    f = lambda x: np.array([x[0] * x[1], np.sin(x[0]), x[1] ** 2])  # noqa: E731
    jac = lambda x: np.array([[x[1], x[0]], [np.cos(x[0]), 0.0], [0.0, 2 * x[1]]])  # noqa: E731
    verdict(check_jacobian(f, jac, X2), "pass")
    rejects(lambda: check_jacobian(f, lambda x: jac(x).T, X2), gp.InvalidArgument, "jac", r"shape \(2, 3\); expected")


@case("jacobian-dict-x", "check_jacobian")
def _():
    check_jacobian = needs("check_jacobian")
    rejects(lambda: check_jacobian(f_lin, lambda x: A, {"x": X2}), gp.InvalidArgument, "x", "one array or float.*check_vjp")


@case("jacobian-complex", "check_jacobian")
def _():
    check_jacobian = needs("check_jacobian")
    z = np.array([1 + 2j, 0.5 - 0.3j])
    rejects(lambda: check_jacobian(lambda x: x**2, lambda x: np.diag(2 * x), z), gp.InvalidArgument, "x", "check_vjp")
    rejects(lambda: check_jacobian(lambda x: x * 1j, lambda x: np.eye(2) * 1j, X2), gp.InvalidArgument, "f", "check_vjp")


# == the command line: gradprobe check FILE:NAME =====================================================

GOOD_FILE = """
import numpy as np

def problem():
    return (lambda p: float(np.sum(p ** 3)), lambda p: 3 * p ** 2, np.array([1.0, -2.0]))

def wrong():
    return (lambda p: float(np.sum(p ** 3)), lambda p: 6 * p ** 2, np.array([1.0, -2.0]))

def raises_in_loss():
    def loss(p):
        raise ValueError("bad loss")
    return (loss, lambda p: p, np.array([1.0]))

def two():
    return (1, 2)

def torch_without_inputs():
    return {"torch": abs}

def bad_params():
    return (lambda p: 0.0, lambda p: p, np.arange(3))

def calls_itself_a_problem():
    raise RuntimeError("cannot build")

NOT_A_FUNCTION = 3
"""


def cli(source, target, *flags):
    """Run `gradprobe check` in-process on `source` saved to a temporary file; (exit, out, err)."""
    import contextlib
    import io
    import sys
    import tempfile

    from gradprobe.tools._cli import main

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "user_problem.py"
        if source is not None:
            path.write_text(source)
        out, err = io.StringIO(), io.StringIO()
        saved_path = list(sys.path)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["check", target.replace("FILE", str(path)), *flags])
        finally:
            sys.path[:] = saved_path
    error = err.getvalue()
    assert str(Path(gp.__file__).parent) not in error, f"gradprobe's own frames leaked into:\n{error}"
    return code, out.getvalue(), error


@case("cli-pass-fail-exit-codes", "cli")
def _():
    assert cli(GOOD_FILE, "FILE:problem")[0] == 0
    code, out, _ = cli(GOOD_FILE, "FILE:wrong")
    assert code == 1 and "2.00x" in out


@case("cli-missing-file", "cli")
def _():
    code, _, err = cli(None, "FILE:problem")
    assert code == 3 and "no such file" in err


@case("cli-target-without-name", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE")
    assert code == 3 and "path/to/file.py:NAME" in err


@case("cli-name-not-defined", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:nope")
    assert code == 3 and "defines no 'nope'" in err and "problem" in err


@case("cli-name-not-callable", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:NOT_A_FUNCTION")
    assert code == 3 and "is a int, not a function" in err


@case("cli-name-returns-wrong-arity", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:two")
    assert code == 3 and "must return (loss, grad, params)" in err and "tuple of 2" in err


@case("cli-name-raises", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:calls_itself_a_problem")
    assert code == 3 and "RuntimeError: cannot build" in err and "user_problem.py" in err


@case("cli-syntax-error", "cli")
def _():
    code, _, err = cli("def problem(:\n", "FILE:problem")
    assert code == 3 and "SyntaxError" in err


@case("cli-loss-raises", "cli")
def _():  # the user's traceback, not gradprobe's
    code, _, err = cli(GOOD_FILE, "FILE:raises_in_loss")
    assert code == 3 and "ValueError: bad loss" in err and "user_problem.py" in err


@case("cli-bad-params", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:bad_params")
    assert code == 3 and "`params`" in err and "dtype int64" in err


@case("cli-bad-options", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:problem", "--strategy", "fastest")
    assert code == 3 and "`strategy` must be one of" in err
    code, _, err = cli(GOOD_FILE, "FILE:problem", "--seed", "x")
    assert code == 3 and "invalid int value" in err
    code, _, err = cli(GOOD_FILE, "FILE:problem", "--budget", "abc")
    assert code == 3 and "argument --budget: expected a positive number of loss evaluations" in err
    code, _, err = cli(GOOD_FILE, "FILE:problem", "--confidence", "2")
    assert code == 3 and "argument --confidence: expected a probability between 0 and 1" in err


@case("cli-framework-problem-malformed", "cli")
def _():
    code, _, err = cli(GOOD_FILE, "FILE:torch_without_inputs")
    assert code == 3 and "returned no 'inputs'; a PyTorch problem is {'torch': fn, 'inputs': (x, ...)}" in err


# == the torch adapter ===============================================================================


def torch_adapter():
    torch = pytest.importorskip("torch")
    return torch, gp.torch


def requiring(torch, values, dtype=None):
    return torch.tensor(values, dtype=dtype or torch.float64, requires_grad=True)


@case("executor-spawn-with-a-fileless-main")
def _():  # a spawned worker imports __main__ from its file: an interactive session's functions are not there
    import multiprocessing
    import sys
    import types
    from concurrent.futures import ProcessPoolExecutor

    interactive = types.ModuleType("__main__")  # no __file__, as in a REPL, a notebook or python -c
    loss = Counting(square)
    loss.__module__ = "__main__"
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = interactive
    try:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            rejects(lambda: gp.check(loss, double, X, executor=pool), gp.InvalidArgument, "loss",
                    "importing your `__main__` afresh .*'spawn'.*module file")
    finally:
        sys.modules["__main__"] = saved
    assert loss.calls <= 1


@case("torch-nothing-requires-grad", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(torch.sin, torch.ones(3)), gp.InvalidValue, "inputs", "requires_grad_")
    # A numpy array or a dict of tensors: the message says what was passed and how to pass it.
    rejects(lambda: gpt.check(torch.sin, np.ones(3)), gp.InvalidValue, "inputs", r"not tensors: `input0` \(numpy.ndarray\)")
    rejects(lambda: gpt.check(lambda d: d["a"], {"a": requiring(torch, [1.0])}), gp.InvalidValue, "inputs",
            r"builtins.dict.*dict\(zip\(d, t\)\)")


@case("torch-module-raises-on-its-batch", "torch")
def _():  # the module's own error (a batch of the wrong shape) is the module's, not `loss_fn`'s
    torch, gpt = torch_adapter()
    model = torch.nn.Linear(3, 2).double()
    rejects(lambda: gpt.check_module(model, torch.nn.functional.mse_loss, torch.ones(4, 5, dtype=torch.float64),
                                     torch.ones(4, 2, dtype=torch.float64)),
            gp.UserFunctionError, "module", "raised RuntimeError on batch\\[0\\]")


@case("torch-bad-order-and-mode", "torch")
def _():
    torch, gpt = torch_adapter()
    x = requiring(torch, [0.5, -1.0])
    for order in (0, 5, True):
        rejects(lambda: gpt.check(torch.sin, x, order=order), gp.InvalidArgument, "order", "integer from 1 to 4")
    rejects(lambda: gpt.check(torch.sin, x, mode="sideways"), gp.InvalidArgument, "mode", "'reverse'")
    rejects(lambda: gpt.check(torch.sin, x, order=2, mode="forward"), gp.InvalidArgument, "mode", "order=1")
    rejects(lambda: gpt.check(torch.sin, x, order=2, oracle="forward"), gp.InvalidArgument, "order", "differences")
    rejects(lambda: gpt.check(torch.sin, x, mode="forward", oracle="forward"), gp.InvalidArgument, "oracle",
            "own reference")


def _exp_function(torch, *, once=False, jvp=False):
    """exp as an autograd.Function: its backward `@once_differentiable`, and/or with a `jvp`."""
    from torch.autograd.function import once_differentiable

    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y

    class Exp(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.exp()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)
            ctx.y = output

    Exp.backward = staticmethod(once_differentiable(backward) if once else backward)
    if jvp:
        Exp.jvp = staticmethod(lambda ctx, t: ctx.y * t)
    return Exp.apply


@case("torch-order-2-once-differentiable", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(_exp_function(torch, once=True), requiring(torch, [0.5, -1.0]), order=2),
            gp.InvalidArgument, "order", "once_differentiable")


@case("torch-forward-mode-without-jvp", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(_exp_function(torch), requiring(torch, [0.5, -1.0]), mode="forward"),
            gp.InvalidArgument, "mode", "jvp")


@case("torch-forward-oracle-own-jvp", "torch")
def _():
    torch, gpt = torch_adapter()
    report = gpt.check(_exp_function(torch, jvp=True), requiring(torch, [0.5, -1.0]), oracle="forward")
    verdict(report, "pass")
    assert "ran your own jvp rules (Exp)" in report.notes[0]


@case("torch-unsupported-dtypes", "torch")
def _():
    torch, gpt = torch_adapter()
    import warnings

    with warnings.catch_warnings():  # complex64 and complex128 are checked (tests/test_complex.py)
        warnings.simplefilter("ignore", UserWarning)  # "ComplexHalf support is experimental"
        half = requiring(torch, [1.0, 2.0], torch.complex32)
    rejects(lambda: gpt.check(torch.sin, half), gp.InvalidArgument, "inputs", r"complex32 \(chalf\).*\.to\(torch.complex64\)")


@case("torch-complex-derivatives", "torch")
def _():  # complex inputs are checked through their parts, by reverse mode at order 1
    torch, gpt = torch_adapter()
    z = requiring(torch, [1 + 2j, 0.5 - 1j], torch.complex128)
    fn = lambda t: (t.abs() ** 2).sum()  # noqa: E731
    for option, value in (("oracle", "forward"), ("mode", "forward"), ("mode", "both"), ("order", 2)):
        rejects(lambda: gpt.check(fn, z, **{option: value}), gp.InvalidArgument, option, "not supported for complex inputs")


@case("torch-fn-not-callable", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(3, requiring(torch, [1.0])), gp.InvalidArgument, "fn", "must be callable")


@case("torch-fn-returns-no-tensor", "torch")
def _():
    torch, gpt = torch_adapter()
    x = requiring(torch, [0.5, -1.0])
    for fn in (lambda t: None, lambda t: "loss", lambda t: (t > 0).long()):
        rejects(lambda: gpt.check(fn, x), gp.InvalidArgument, "fn", "no floating-point tensor")


@case("torch-fn-raises", "torch")
def _():
    torch, gpt = torch_adapter()
    e = rejects(lambda: gpt.check(lambda t: t @ torch.ones(5, dtype=t.dtype), requiring(torch, [1.0, 2.0])), gp.UserFunctionError, "fn", "RuntimeError")
    assert isinstance(e.__cause__, RuntimeError)


@case("torch-fn-in-place-on-input", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(lambda t: t.add_(1).sum(), requiring(torch, [1.0, 2.0])), gp.UserFunctionError, "fn", "in-place")


@case("torch-fn-returns-its-input", "torch")
def _():
    torch, gpt = torch_adapter()
    x = requiring(torch, [0.5, -1.0, 2.0])
    verdict(gpt.check(lambda t: t, x), "pass")
    verdict(gpt.check(lambda t: t[::2], x), "pass")


@case("torch-non-contiguous-and-low-precision", "torch")
def _():
    torch, gpt = torch_adapter()
    base = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(3, 2)
    verdict(gpt.check(torch.sin, base.t().requires_grad_()), "pass")
    verdict(gpt.check(torch.tanh, base.float().requires_grad_()), "pass")
    # float16 tanh is rounded to 3 digits: an honest check may not decide, but never fails it
    assert gpt.check(torch.tanh, base.half().requires_grad_()).status != "fail"


@case("torch-empty-or-nan-input", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(torch.sin, requiring(torch, [])), gp.InvalidValue, "inputs", "empty")
    rejects(lambda: gpt.check(torch.sin, requiring(torch, [float("nan"), float("inf")])), gp.InvalidValue, "inputs", "only NaN or inf")
    # Some NaN or inf among finite elements (an attention mask's -inf): those are held fixed.
    held = gpt.check(lambda t: torch.softmax(t, 0), requiring(torch, [-float("inf"), 1.0, 2.0]))
    assert held.status == "pass" and held.tensors["t"].coverage == 2 / 3


@case("torch-process-pool-executor", "torch")
def _():  # the function, its tensors and modules stay in this process: refused before any call
    torch, gpt = torch_adapter()
    from concurrent.futures import ProcessPoolExecutor

    calls = []

    def fn(x):
        calls.append(1)
        return torch.sin(x)

    with ProcessPoolExecutor(2) as pool:
        rejects(lambda: gpt.check(fn, requiring(torch, [1.0, 2.0]), executor=pool), gp.InvalidArgument, "executor",
                "ThreadPoolExecutor")
        module = torch.nn.Linear(2, 1)
        rejects(lambda: gpt.check_module(module, torch.nn.MSELoss(), torch.ones(3, 2), torch.ones(3, 1), executor=pool),
                gp.InvalidArgument, "executor", "other processes")
    assert not calls


@case("torch-sparse-input", "torch")
def _():
    torch, gpt = torch_adapter()
    sparse = torch.eye(3).to_sparse().requires_grad_()
    rejects(lambda: gpt.check(lambda x: x.to_dense().sum(), sparse), gp.InvalidArgument, "inputs", "dense tensors")


@case("torch-nan-output", "torch")
def _():
    torch, gpt = torch_adapter()
    rejects(lambda: gpt.check(lambda t: t * float("nan"), requiring(torch, [1.0, 2.0])), gp.InvalidValue, "fn", "NaN")


@case("torch-custom-function-wrong-backward", "torch")
def _():
    torch, gpt = torch_adapter()

    class DoubledSin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t.sin()

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return 2 * g * t.cos()

    report = gpt.check(DoubledSin.apply, requiring(torch, [0.5, -1.0, 2.0]))
    verdict(report, "fail", list(report.tensors))


@case("torch-backward-returns-none", "torch")
def _():
    torch, gpt = torch_adapter()

    class NoGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.sin()

        @staticmethod
        def backward(ctx, g):
            return None

    report = gpt.check(NoGrad.apply, requiring(torch, [0.5, -1.0, 2.0]))
    assert report.status == "fail"  # None means zero: wrong for sin


@case("torch-backward-raises-or-nan", "torch")
def _():  # the user passed no `grad`: the backward is their function's, and so is the error
    torch, gpt = torch_adapter()

    class Broken(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.sin()

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("boom")

    class Overflowing(Broken):
        @staticmethod
        def backward(ctx, g):
            return g * torch.tensor([1.0, float("nan"), 1.0], dtype=g.dtype)

    rejects(lambda: gpt.check(Broken.apply, requiring(torch, [0.5, -1.0, 2.0])), gp.UserFunctionError, "fn",
            "in its backward: boom")
    rejects(lambda: gpt.check(Overflowing.apply, requiring(torch, [0.5, -1.0, 2.0])), gp.InvalidValue, "fn",
            r"`input0` at 1 of its 3 element\(s\): \(1,\) NaN")


@case("torch-same-tensor-twice", "torch")
def _():
    torch, gpt = torch_adapter()
    x = requiring(torch, [0.5, -1.0])
    verdict(gpt.check(lambda a, b: (a * b.sin()).sum(), x, x), "pass")


@case("torch-module-bad-arguments", "torch")
def _():
    torch, gpt = torch_adapter()
    model = torch.nn.Linear(3, 2).double()
    batch = torch.ones(1, 3, dtype=torch.float64)
    rejects(lambda: gpt.check_module(lambda t: t, lambda o: o.sum(), batch), gp.InvalidArgument, "module", "torch.nn.Module")
    rejects(lambda: gpt.check_module(model, 3, batch), gp.InvalidArgument, "loss_fn", "must be callable")
    frozen = torch.nn.Linear(3, 2).double().requires_grad_(False)
    rejects(lambda: gpt.check_module(frozen, lambda o: o.sum(), batch), gp.InvalidValue, "module", "requires_grad=True")


@case("torch-module-loss-raises-midway", "torch")
def _():  # the module is restored bit for bit (the suite's guard also checks it)
    torch, gpt = torch_adapter()
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss_fn(out):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return out.pow(2).sum()

    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="train mode"):
        gpt.check_module(model, loss_fn, torch.randn(4, 3, dtype=torch.float64))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.training


@case("torch-module-tied-weights", "torch")
def _():
    torch, gpt = torch_adapter()
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3)).double()
    model[2].weight = model[0].weight  # one parameter in two places: checked once
    report = verdict(gpt.check_module(model, lambda o: o.pow(2).sum(), torch.ones(2, 3, dtype=torch.float64)), "pass")
    assert list(report.tensors) == ["0.weight", "0.bias", "2.bias"]


# == the JAX adapter ===================================================================================


def jax_adapter():
    jax = pytest.importorskip("jax")
    return jax, jax.numpy, gp.jax


@case("jax-no-float-argument", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    rejects(lambda: gpj.check(lambda t: jnp.sum(t), jnp.arange(3)), gp.InvalidValue, "args", "no floating-point array")


@case("jax-bad-argnums-and-oracle", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    rejects(lambda: gpj.check(jnp.sin, jnp.ones(2), argnums=3), gp.InvalidArgument, "argnums", r"range\(1\)")
    rejects(lambda: gpj.check(jnp.sin, jnp.ones(2), oracle="magic"), gp.InvalidArgument, "oracle", "'differences' or 'forward'")


@case("jax-fn-returns-no-array", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    for fn in (lambda t: None, lambda t: "loss"):
        rejects(lambda: gpj.check(fn, jnp.ones(2)), gp.InvalidArgument, "fn", "no floating-point array")


@case("jax-fn-raises", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    rejects(lambda: gpj.check(lambda t: t @ jnp.ones(5), jnp.ones(2)), gp.UserFunctionError, "fn", "raised")


@case("jax-empty-or-nan-argument", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    rejects(lambda: gpj.check(jnp.sin, jnp.zeros(0)), gp.InvalidValue, "args", "empty")
    rejects(lambda: gpj.check(jnp.sin, jnp.array([jnp.nan, jnp.inf])), gp.InvalidValue, "args", "only NaN or inf")
    # Some NaN or inf among finite elements (an attention mask's -inf): those are held fixed.
    held = gpj.check(lambda t: jax.nn.softmax(t), jnp.array([-jnp.inf, 1.0, 2.0]))
    assert held.status == "pass" and held.tensors["t"].coverage == 2 / 3


@case("jax-numpy-and-python-arguments", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    verdict(gpj.check(lambda t: jnp.sum(t**2), np.array([1.0, 2.0])), "pass")
    verdict(gpj.check(lambda t: t**2, 1.5), "pass")
    verdict(gpj.check(lambda t: t, jnp.array([0.5, -1.0])), "pass")


@case("jax-custom-vjp-wrong", "jax")
def _():
    jax, jnp, gpj = jax_adapter()

    @jax.custom_vjp
    def f(t):
        return jnp.sin(t)

    f.defvjp(lambda t: (jnp.sin(t), t), lambda t, g: (2 * g * jnp.cos(t),))
    verdict(gpj.check(f, jnp.array([0.5, -1.0, 2.0])), "fail", ["t"])


@case("jax-torch-tensor-argument", "jax")
def _():  # once a raw TypeError from inside gradprobe
    jax, jnp, gpj = jax_adapter()
    torch = pytest.importorskip("torch")
    rejects(lambda: gpj.check(lambda a: jnp.sum(a**2), torch.ones(3, dtype=torch.float64)), gp.InvalidArgument, "args",
            "gp.torch.check")


@case("jax-bad-order-and-mode", "jax")
def _():
    jax, jnp, gpj = jax_adapter()
    x = jnp.array([0.5, -1.0, 2.0])
    rejects(lambda: gpj.check(jnp.sin, x, order=0), gp.InvalidArgument, "order", "integer from 1 to")
    rejects(lambda: gpj.check(jnp.sin, x, mode="sideways"), gp.InvalidArgument, "mode", "'reverse'")

    @jax.custom_vjp
    def f(t):
        return jnp.sin(t)

    f.defvjp(lambda t: (jnp.sin(t), t), lambda t, g: (g * jnp.cos(t),))
    rejects(lambda: gpj.check(f, x, mode="forward"), gp.InvalidArgument, "mode", "custom_vjp function has no JVP")

    @jax.custom_jvp
    def h(t):
        return jnp.sin(t)

    h.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]))
    rejects(lambda: gpj.check(h, x, oracle="forward"), gp.InvalidArgument, "oracle", r"own forward-mode rules \(h\)")


@case("jax-complex-derivatives", "jax")
def _():  # complex arguments are checked through their parts, by reverse mode at order 1
    jax, jnp, gpj = jax_adapter()
    z = jnp.array([1 + 2j, 0.5 - 1j], dtype=jnp.complex64)
    fn = lambda t: jnp.sum(jnp.abs(t) ** 2)  # noqa: E731
    for option, value in (("oracle", "forward"), ("mode", "forward"), ("order", 2)):
        rejects(lambda: gpj.check(fn, z, **{option: value}), gp.InvalidArgument, option, "not supported for complex args")


# == the catalogue and its documentation ===========================================================


# Cases that show a bug in a module this catalogue does not own, left failing (strict: they must
# be fixed, and the mark removed, rather than pass by accident). Each is in docs/bad_input.md.
KNOWN_ISSUES = {
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_ISSUES[c.id])) if c.id in KNOWN_ISSUES else c
        for c in CATALOGUE
    ],
    ids=[c.id for c in CATALOGUE],
)
def test_bad_input(case, monkeypatch):
    monkeypatch.setattr(Running, "entry", case.entry)
    case.run()


def documented_ids(section=None):
    text = DOC.read_text()
    catalogue, _, known = text.partition("## Known issues")
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", known if section == "known" else catalogue, flags=re.MULTILINE)
    return rows


def test_catalogue_is_documented():
    rows = documented_ids()
    assert len(rows) == len(set(rows)), "a case is documented twice"
    assert set(rows) == {c.id for c in CATALOGUE}
    assert len(CATALOGUE) >= 40
    assert set(documented_ids("known")) == set(KNOWN_ISSUES)
