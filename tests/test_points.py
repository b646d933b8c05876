"""``points=k``: the check at the user's point and at k - 1 nearby random ones (strategies/_points.py),
and the nearby-point rule it shares with the check at kinks (estimate/_nearby.py)."""

import math

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.estimate._nearby import KINK_MOVE, POINTS_MOVE, nearby_point
from gradprobe.params._params import Params
from gradprobe.report._types import Report, TensorReport
from gradprobe.strategies._options import validate_options
from gradprobe.strategies._points import _union

# -- the motivating cases: bugs a point hides ----------------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 3))


def layer_loss(p):
    return float(np.sum(np.tanh(X @ p["W"].T + p["b"]) ** 2))


def layer_grad_forgetting_b(p):
    t = np.tanh(X @ p["W"].T)  # the bug: "+ p['b']" forgotten, invisible while b is 0
    g = 2 * t * (1 - t**2)
    return {"W": g.T @ X, "b": g.sum(0)}


def fresh_layer(dtype=np.float64):
    return {"W": RNG.standard_normal((4, 3)).astype(dtype), "b": np.zeros(4, dtype)}


def test_a_backward_that_forgets_a_zero_bias_passes_at_the_point_and_fails_nearby():
    params = fresh_layer()
    assert gp.check(layer_loss, layer_grad_forgetting_b, params).status == "pass"
    report = gp.check(layer_loss, layer_grad_forgetting_b, params, points=3)
    assert report.status == "fail" and set(report.failing) == {"W", "b"}
    assert [p.status for p in report.points] == ["pass", "fail", "fail"]
    text = str(report)
    assert "FAIL at points 2, 3 of 3 (nearby, not yours; pass at yours); shown: point 2" in text
    assert "point 1 of 3 (yours): PASS" in text and "point 2 of 3 (nearby, not yours): FAIL: W" in text
    assert "u * 0.1 * s" in text  # the move is stated
    assert report.reproduce.endswith("points=3)")
    # The tensor shown is point 2's own report.
    assert report.tensors["b"] is report.points[1].tensors["b"]


def square_of(W):
    return float(np.sum(np.tanh(W @ W)))


def square_grad(W):
    S = 1 - np.tanh(W @ W) ** 2
    return S @ W.T + W.T @ S


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_transposed_gradient_of_a_symmetric_matrix_passes_at_it_and_is_named_nearby(dtype):
    A = np.random.default_rng(1).standard_normal((4, 4))
    W = ((A + A.T) / 2).astype(dtype)

    def transposed(W):
        return square_grad(W.astype(np.float64)).T

    assert gp.check(square_of, transposed, W).status == "pass"  # transposed == right where W is symmetric
    report = gp.check(square_of, transposed, W, points=3)
    assert report.status == "fail" and report.tensors["params"].diagnosis == "transposed"
    assert report.points[0].status == "pass"
    assert gp.check(square_of, lambda W: square_grad(W.astype(np.float64)), W, points=3).status == "pass"


# -- the report: one union of the points --------------------------------------------------------


def synthetic(status, difference, resolution, nfev, tensors):
    return Report(
        status, difference, resolution, nfev,
        {name: TensorReport(name, (2,), s, difference, resolution) for name, s in tensors.items()},
    )  # fmt: skip


def test_the_union_takes_the_worst_status_the_summed_cost_and_the_largest_difference():
    options = validate_options(points=3)
    yours = synthetic("pass", 1e-9, 1e-8, 100, {"W": "pass", "b": "pass"})
    undecided = synthetic("inconclusive", math.nan, math.inf, 1, {"W": "inconclusive", "b": "inconclusive"})
    wrong = synthetic("fail", 0.3, 1e-7, 120, {"W": "pass", "b": "fail"})
    union = _union([yours, undecided, wrong], options)
    assert union.status == "fail" and union.nfev == 221
    assert union.difference == 0.3 and union.resolution == math.inf  # NaN difference skipped
    assert union.tensors["b"] is wrong.tensors["b"] and union.tensors["W"] is undecided.tensors["W"]
    assert union.points == (yours, undecided, wrong)
    assert _union([yours, undecided], validate_options(points=2)).status == "inconclusive"
    both = _union([yours, synthetic("pass", 2e-9, 3e-8, 90, {"W": "pass", "b": "pass"})], validate_options(points=2))
    assert both.status == "pass" and both.difference == 2e-9 and both.resolution == 3e-8
    assert both.tensors["W"] is yours.tensors["W"]  # a tie keeps the user's point


def test_a_real_union_adds_up_and_points_1_is_the_plain_check():
    params = fresh_layer()
    plain = gp.check(layer_loss, layer_grad_forgetting_b, params)
    assert plain.points == () and plain == gp.check(layer_loss, layer_grad_forgetting_b, params, points=1)
    report = gp.check(layer_loss, layer_grad_forgetting_b, params, points=3)
    assert report.nfev == sum(p.nfev for p in report.points)
    assert report.difference == max(p.difference for p in report.points)
    # The user's point gets the same check as without `points`.
    assert report.points[0].tensors == plain.tensors and report.points[0].nfev == plain.nfev
    assert report.to_dict()["points"][1]["status"] == "fail"


def test_the_json_of_several_points_follows_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    report = gp.check(layer_loss, layer_grad_forgetting_b, fresh_layer(), points=2)
    data = report.to_dict(values=True)
    jsonschema.Draft202012Validator(gp.Report.json_schema()).validate(data)
    assert [p["status"] for p in data["points"]] == ["pass", "fail"] and data["points"][0]["points"] == []


def test_the_html_and_the_terminal_say_where_a_tensor_failed():
    report = gp.check(layer_loss, layer_grad_forgetting_b, fresh_layer(), points=2)
    assert "FAIL at point 2 of 2 (nearby, not yours; pass at yours)" in report.to_html()
    console = pytest.importorskip("rich.console").Console(record=True, width=200)
    console.print(report)
    assert "FAIL at point 2 of 2 (nearby, not yours; pass at yours)" in console.export_text()


def test_the_same_seed_gives_the_same_points_and_another_seed_others():
    params = fresh_layer()
    one = gp.check(layer_loss, layer_grad_forgetting_b, params, points=3, seed=4)
    assert one == gp.check(layer_loss, layer_grad_forgetting_b, params, points=3, seed=4)
    other = gp.check(layer_loss, layer_grad_forgetting_b, params, points=3, seed=5)
    assert one.points[1].tensors["b"].worst != other.points[1].tensors["b"].worst


def test_a_budget_is_shared_by_the_points():
    report = gp.check(layer_loss, layer_grad_forgetting_b, fresh_layer(), points=3, budget=400)
    assert report.nfev <= 400 and report.coverage.budget == "400 evaluations"
    with pytest.raises(gp.InvalidValue, match=r"\(8 for each of the 3 points\)") as info:
        gp.check(layer_loss, layer_grad_forgetting_b, fresh_layer(), points=3, budget=26)
    assert info.value.argument == "budget"


# -- the domain: a drawn point where the function is undefined ---------------------------------


def unit_circle(p):
    return float(sum(math.sqrt(1 - v * v) for v in p))  # raises ValueError past |p| = 1


def unit_circle_nan(p):
    with np.errstate(invalid="ignore"):
        return float(np.sum(np.sqrt(1 - p**2)))  # NaN past |p| = 1


def unit_circle_grad(p):
    return -p / np.sqrt(1 - p**2)


@pytest.mark.parametrize("loss", [unit_circle, unit_circle_nan], ids=["raises", "nan"])
def test_a_drawn_point_outside_the_domain_is_said_and_never_passed(loss):
    p = np.array([0.5, 0.995, -0.2])
    report = gp.check(loss, unit_circle_grad, p, points=4)
    outside = [i for i, point in enumerate(report.points, start=1) if point.tensors["params"].reason == "nonfinite"]
    assert outside and 1 not in outside and len(outside) < 4
    assert report.status == "inconclusive" and report.points[0].status == "pass"
    assert all(report.points[i - 1].nfev == 1 for i in outside)
    assert any(f"at point {outside[0]} of 4 (nearby, not yours): nothing was checked" in n for n in report.notes)
    # A wrong gradient still fails at the points that are inside.
    assert gp.check(loss, lambda p: 2 * unit_circle_grad(p), p, points=4).status == "fail"


def test_a_parameter_never_changes_sign_so_a_log_stays_defined():
    q = np.array([1e-3, 2.0, 0.5])
    report = gp.check(lambda q: float(np.sum(np.log(q))), lambda q: 1 / q, q, points=5)
    assert report.status == "pass" and len(report.points) == 5


def test_a_plain_oracle_is_asked_at_every_point():
    def jvp(p, tangent):
        return float(np.sum(3 * p**2 * tangent))

    x = np.array([0.5, -1.0, 2.0])
    report = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2, x, oracle=jvp, points=3)
    assert report.status == "pass" and {p.method for p in report.points} == {"forward"}
    wrong = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2 + p * (p < 0), x, oracle=jvp, points=2)
    assert wrong.status == "fail"


# -- the nearby-point rule ----------------------------------------------------------------------


def test_nearby_points_move_within_the_stated_bounds_and_never_touch_the_user_arrays():
    W = np.array([[1.0, 2.0], [2.0, 1e-6]])
    W.setflags(write=False)
    tree = {"W": W, "b": np.zeros(3), "s": -0.5}
    params = Params(tree)
    moved = nearby_point(params, seed=0, size=POINTS_MOVE, draw=1)
    assert moved["W"] is not W and np.array_equal(W, [[1.0, 2.0], [2.0, 1e-6]])
    scale = np.maximum(np.abs(W), np.sqrt(np.mean(W**2)))
    assert np.all(np.abs(moved["W"] - W) <= POINTS_MOVE * scale)
    assert moved["W"][0, 1] != moved["W"][1, 0]  # the symmetry is broken
    assert np.all(np.sign(moved["W"]) == np.sign(W)) and moved["s"] < 0  # no sign change, even at 1e-6
    # A tensor of zeros moves on the scale of all parameters (at most 1).
    everything = np.sqrt(np.mean(params.values**2))
    assert np.all(moved["b"] != 0) and np.all(np.abs(moved["b"]) <= POINTS_MOVE * everything)
    again = nearby_point(params, seed=0, size=POINTS_MOVE, draw=1)
    assert np.array_equal(again["W"], moved["W"])
    assert not np.array_equal(nearby_point(params, seed=0, size=POINTS_MOVE, draw=2)["W"], moved["W"])
    small = nearby_point(params, seed=0, size=KINK_MOVE)
    assert 0 < np.max(np.abs(small["W"] - W)) <= KINK_MOVE * np.max(scale)


def test_an_all_zero_point_moves_by_up_to_a_tenth():
    moved = nearby_point(Params(np.zeros(1000)), seed=0, size=POINTS_MOVE, draw=1)
    assert 0.09 < np.max(np.abs(moved)) <= 0.1


# -- PyTorch and JAX -----------------------------------------------------------------------------


def test_torch_check_and_check_module_find_a_bug_hidden_by_a_zero_bias():
    torch = pytest.importorskip("torch")

    class TanhLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W, b):
            ctx.save_for_backward(x, W)
            return torch.tanh(x @ W.T + b)

        @staticmethod
        def backward(ctx, g):
            x, W = ctx.saved_tensors
            t = torch.tanh(x @ W.T)  # the bug: b forgotten
            dz = g * (1 - t**2)
            return dz @ W, dz.T @ x, dz.sum(0)

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
            self.bias = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))

        def forward(self, x):
            return TanhLayer.apply(x, self.weight, self.bias)

    torch.manual_seed(0)
    x = torch.randn(6, 3, dtype=torch.float64)
    W = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    def layer(x, W, b):
        return TanhLayer.apply(x, W, b)

    assert gp.torch.check(layer, x, W, b).status == "pass"
    report = gp.torch.check(layer, x, W, b, points=3)
    assert report.status == "fail" and "b" in report.failing and report.points[0].status == "pass"
    assert "points=3" in report.reproduce and torch.equal(b, torch.zeros(4, dtype=torch.float64))

    layer = Layer()
    before = {name: p.detach().clone() for name, p in layer.named_parameters()}
    target = torch.randn(6, 4, dtype=torch.float64)
    module = gp.torch.check_module(layer, torch.nn.functional.mse_loss, x, target, points=3)
    assert module.status == "fail" and "bias" in module.failing and module.points[0].status == "pass"
    assert all(torch.equal(p, before[name]) for name, p in layer.named_parameters())

    # oracle="forward" is built at the user's point: the nearby ones fall back to differences, said so.
    forward = gp.torch.check(torch.sin, torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True),
                             oracle="forward", points=2)  # fmt: skip
    assert forward.status == "pass" and [p.method for p in forward.points] == ["forward", "richardson"]
    assert any("bound to your point" in note for note in forward.notes)


def test_jax_check_names_a_transposed_gradient_hidden_by_a_symmetric_matrix():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.custom_vjp
    def squared(W):
        return W @ W

    squared.defvjp(lambda W: (W @ W, W), lambda W, g: ((g @ W.T + W.T @ g).T,))  # the bug: .T

    A = np.random.default_rng(0).standard_normal((3, 3))
    W = jnp.asarray((A + A.T) / 2, dtype=jnp.float32)

    def f(W):
        return jnp.sum(jnp.tanh(squared(W)))

    assert gp.jax.check(f, W).status == "pass"
    report = gp.jax.check(f, W, points=3)
    assert report.status == "fail" and report.tensors["W"].diagnosis == "transposed"
    assert report.points[0].status == "pass" and "points=3" in report.reproduce


@pytest.mark.parametrize("points", [0, -2, True, 2.0, "3", None])
def test_points_must_be_a_positive_int_for_every_entry_point(points):
    with pytest.raises(gp.InvalidArgument, match="`points` must be a positive int") as info:
        gp.check(layer_loss, layer_grad_forgetting_b, fresh_layer(), points=points)
    assert info.value.argument == "points"
    torch = pytest.importorskip("torch")
    with pytest.raises(gp.InvalidArgument, match="`points` must be a positive int"):
        gp.torch.check(torch.sin, torch.ones(2, dtype=torch.float64, requires_grad=True), points=points)
