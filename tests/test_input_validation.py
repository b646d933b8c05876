"""Every bad input raises a GradprobeError naming the argument, before the loss is evaluated."""

import numpy as np
import pytest

import gradprobe as gp

X = np.array([1.0, -2.0, 0.5])


class CountingLoss:
    def __init__(self, value=lambda p: float(np.sum(np.asarray(p) ** 2))):
        self.value, self.calls = value, 0

    def __call__(self, p):
        self.calls += 1
        return self.value(p)


def good_grad(p):
    return 2 * np.asarray(p)


CASES = [
    # (id, params, grad, loss value, error type, argument, message fragment)
    ("grad wrong shape", X, lambda p: np.zeros(4), None, gp.InvalidArgument, "grad", r"shape \(4,\) but the parameter has shape \(3,\)"),
    ("grad transposed shape", np.ones((2, 3)), lambda p: np.ones((3, 2)), None, gp.InvalidArgument, "grad", r"\(transposed\?\)"),
    ("grad wrong structure", {"a": X}, lambda p: [X], None, gp.InvalidArgument, "grad", "returned list at `top level` where the parameters have a dict"),
    ("grad missing key", {"a": X, "b": X}, lambda p: {"a": X}, None, gp.InvalidArgument, "grad", "no gradient for parameter `b`: expected key `b` or `db`"),
    ("grad None entry", {"a": X}, lambda p: {"a": None}, None, gp.InvalidArgument, "grad", "returned None for parameter `a`"),
    ("grad list too short", [X, X], lambda p: [X], None, gp.InvalidArgument, "grad", "returned 1 entries"),
    ("grad NaN", X, lambda p: np.array([1.0, np.nan, 0.0]), None, gp.InvalidValue, "grad", "NaN or inf for `params`"),
    ("grad inf", X, lambda p: np.array([1.0, np.inf, 0.0]), None, gp.InvalidValue, "grad", "NaN or inf"),
    ("grad complex", X, lambda p: X + 1j, None, gp.InvalidArgument, "grad", "is complex .* but the parameter is real"),
    ("grad strings", X, lambda p: np.array(["a", "b", "c"]), None, gp.InvalidArgument, "grad", "return a float array"),
    ("integer params", np.arange(3), good_grad, None, gp.InvalidArgument, "params", r"dtype int64.*astype\(np.float64\)"),
    ("boolean params", np.array([True, False]), good_grad, None, gp.InvalidArgument, "params", "dtype bool"),
    ("object params", np.array([1.0, "a"], dtype=object), good_grad, None, gp.InvalidArgument, "params", "dtype object"),
    ("clongdouble params", (X + 0j).astype(np.clongdouble), good_grad, None, gp.InvalidArgument, "params", "complex64 and complex128"),
    ("empty params", np.zeros(0), good_grad, None, gp.InvalidValue, "params", "is empty"),
    ("empty dict", {}, good_grad, None, gp.InvalidValue, "params", "holds no arrays"),
    ("NaN params", np.array([np.nan, 1.0]), good_grad, None, gp.InvalidValue, "params", "NaN or inf"),
    ("string params", "abc", good_grad, None, gp.InvalidArgument, "params", "is a str"),
    ("loss non-scalar", X, good_grad, lambda p: p, gp.InvalidArgument, "loss", r"array of shape \(3,\), not a scalar.*check_vjp"),
    ("loss tuple", X, good_grad, lambda p: (1.0, "cache"), gp.InvalidArgument, "loss", r"tuple of 2.*f\(p\)\[0\]"),
    ("loss None", X, good_grad, lambda p: None, gp.InvalidArgument, "loss", "returned None"),
    ("loss string", X, good_grad, lambda p: "1.0", gp.InvalidArgument, "loss", "returned str"),
    ("loss NaN", X, good_grad, lambda p: float("nan"), gp.InvalidValue, "loss", "returned nan at the starting point"),
    ("loss inf", X, good_grad, lambda p: np.inf, gp.InvalidValue, "loss", "returned inf at the starting point"),
    ("loss complex", X, good_grad, lambda p: 1 + 2j, gp.InvalidArgument, "loss", "complex number; a loss must be real"),
]


@pytest.mark.parametrize(
    "params, grad, value, error, argument, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_input_validation(params, grad, value, error, argument, message):
    loss = CountingLoss(value) if value is not None else CountingLoss()
    with pytest.raises(error, match=message) as info:
        gp.check(loss, grad, params)
    assert isinstance(info.value, gp.GradprobeError)
    assert info.value.argument == argument
    assert f"`{argument}`" in str(info.value)
    assert loss.calls <= 1  # the starting point at most: no finite-difference work was done


@pytest.mark.parametrize("argument", ["loss", "grad"])
def test_functions_must_be_callable(argument):
    kwargs = {"loss": CountingLoss(), "grad": good_grad, "params": X, argument: 3.0}
    with pytest.raises(gp.InvalidArgument, match=f"`{argument}` must be callable, got float") as info:
        gp.check(**kwargs)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("strategy", "fast", "`strategy` must be one of"),
        ("method", "forward", "`method` must be one of"),
        ("rtol", -1.0, r"`rtol` must be a number in \[0, 1\)"),
        ("seed", -3, "`seed` must be a non-negative int"),
        ("shadow", "yes", "`shadow` must be True, False or None"),
        ("batch_size", 0, "`batch_size` must be a positive int"),
        ("budget", 1.5, r"`budget` must be an int number of loss evaluations .* got 1.5"),
        ("budget", 5, "`budget` of 5 evaluations is too small"),
        ("budget", "soon", "`budget` string 'soon' is not a duration"),
        ("budget", "0s", "`budget` must be a positive duration"),
        ("executor", "threads", "`executor` must be a concurrent.futures.Executor"),
        ("vectorized", "yes", "`vectorized` must be True or False"),
        ("progress", "yes", "`progress` must be True, False or None"),
        ("confidence", 1.0, r"`confidence` must be a probability in \(0, 1\)"),
        ("probes", 0, "`probes` must be a positive int"),
    ],
)
def test_option_validation(option, value, message):
    loss = CountingLoss()
    with pytest.raises(gp.GradprobeError, match=message):
        gp.check(loss, good_grad, X, **{option: value})
    assert loss.calls == 0


def test_torch_like_objects_get_an_adapter_hint():
    class FakeTensor:
        pass

    FakeTensor.__module__ = "torch"
    with pytest.raises(gp.InvalidArgument, match=r"gp.torch.check"):
        gp.check(CountingLoss(), good_grad, FakeTensor())
