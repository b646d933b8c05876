"""gp.torch.check and gp.torch.check_module: custom autograd Functions, modules, oracle='forward'."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install gradprobe[torch])")

import gradprobe as gp  # noqa: E402

DTYPES = [torch.float32, torch.float64]


pytestmark = pytest.mark.usefixtures("torch_one_thread")
DTYPE_IDS = ["float32", "float64"]


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x, g.sum(0)


class LinearBiasBug(Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x, g.mean(0)  # mean instead of sum over the batch


def linear_inputs(dtype, requires_grad=(True, True, True)):
    generator = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (4, 3), (4,)]
    return tuple(
        torch.randn(s, generator=generator, dtype=torch.float64).to(dtype).requires_grad_(r)
        for s, r in zip(shapes, requires_grad)
    )


def linear(x, W, b):
    return Linear.apply(x, W, b)


def linear_bias_bug(x, W, b):
    return LinearBiasBug.apply(x, W, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_custom_function_right_and_wrong_in_its_own_dtype(dtype):
    seen = []

    def recording(x, W, b):
        seen.append((x.dtype, x.device))
        return linear(x, W, b)

    inputs = linear_inputs(dtype)
    report = gp.torch.check(recording, *inputs)
    assert report.status == "pass", report
    assert list(report.tensors) == ["x", "W", "b"]  # named after fn's parameters
    # The loss is evaluated on the inputs' device, in float64 (the reference) for lower precisions;
    # the gradient under test is autograd's at the inputs' own dtype.
    assert {d for d in seen} == {(torch.float64, inputs[0].device), (dtype, inputs[0].device)}
    assert report.reference == ("native" if dtype == torch.float64 else "float64")
    seen.clear()
    assert gp.torch.check(recording, *inputs, shadow=False).status == "pass"
    assert {d for d in seen} == {(dtype, inputs[0].device)}  # shadow=False: only the inputs' dtype
    wrong = gp.torch.check(linear_bias_bug, *linear_inputs(dtype))
    assert wrong.status == "fail" and wrong.failing == ("b",)
    assert wrong.tensors["b"].scale == pytest.approx(1 / 5, rel=1e-3)  # the 1/m of the mean


class LeakyReluFloat32Slope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, 0.1 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x > 0, 1.0, 0.1).to(g.dtype)  # two Python scalars: a float32 slope


def test_a_float32_constant_in_a_float64_backward_is_caught():
    # The slope is 0.1f = 0.10000000149: 1.5e-8 relative off in float64 (gradcheck's rtol is 1e-3),
    # exactly right in float32.
    x = torch.tensor([-0.7, 0.4, -1.9, 1.3, -0.05, 2.2], dtype=torch.float64, requires_grad=True)
    report = gp.torch.check(LeakyReluFloat32Slope.apply, x)
    assert report.status == "fail", report
    assert report.tensors["input0"].counts["fail"] == 3  # the three negative elements
    assert gp.torch.check(LeakyReluFloat32Slope.apply, x.detach().float().requires_grad_()).status == "pass"


class MaxPoolArgmax(torch.autograd.Function):
    """Max over windows of 3; a tied maximum's gradient goes to the first tied element."""

    @staticmethod
    def forward(ctx, x):
        values, index = x.reshape(-1, 3).max(-1)
        ctx.save_for_backward(index)
        return values

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        return torch.zeros(len(g), 3, dtype=g.dtype).scatter_(1, index[:, None], g[:, None]).reshape(-1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_exact_ties_are_kinks_not_failures(dtype):
    # At a 2-way tie the one-sided derivatives are 0 and 1: argmax routing is as valid as an even
    # split, so the tied elements are listed as kinks and the check cannot pass or fail.
    x = torch.tensor([1.5, 1.5, -0.5, 0.5, -1.0, 2.0], dtype=dtype, requires_grad=True)
    report = gp.torch.check(MaxPoolArgmax.apply, x)
    assert report.status == "inconclusive", report
    assert sorted(report.tensors["input0"].kinks) == [(0,), (1,)]


def test_unnamed_inputs_and_the_cotangent_note():
    report = gp.torch.check(Linear.apply, *linear_inputs(torch.float64))
    assert list(report.tensors) == ["input0", "input1", "input2"]
    assert any("cotangent" in note for note in report.notes)


def test_inputs_without_requires_grad_are_skipped_and_listed():
    x, W, b = linear_inputs(torch.float64, requires_grad=(False, True, True))
    index = torch.tensor([0, 2, 2])

    def gathered(x, W, b, index):
        return linear(x, W, b)[index]

    report = gp.torch.check(gathered, x, W, b, index)
    assert report.ok and list(report.tensors) == ["W", "b"]
    assert any("`x` (requires_grad=False)" in note and "`index` (dtype torch.int64)" in note for note in report.notes)


def test_nothing_to_check_is_an_error():
    with pytest.raises(gp.InvalidValue, match=r"no tensor in `inputs` requires grad.*requires_grad_\(\)"):
        gp.torch.check(torch.sin, torch.ones(3))


def test_unsupported_dtype_is_an_error():
    # complex64 and complex128 are checked (tests/test_complex.py); complex32 is not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "ComplexHalf support is experimental"
        half = torch.ones(3, dtype=torch.complex32, requires_grad=True)
    with pytest.raises(gp.InvalidArgument, match="dtype torch.complex32"):
        gp.torch.check(torch.sin, half)


def test_scalar_output_is_the_gradient_itself():
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    report = gp.torch.check(lambda x: (x**3).sum(), x)
    assert report.ok and not report.notes
    assert np.allclose(report.tensors["x"].analytic, 3 * x.detach().numpy() ** 2)


def test_tuple_outputs_with_integer_parts():
    x = torch.tensor([0.3, -1.2, 2.5, 0.9], dtype=torch.float64, requires_grad=True)
    assert gp.torch.check(lambda x: torch.sort(x * x), x).ok  # (values, int64 indices)
    assert gp.torch.check(lambda x: (x.sin(), x.exp() * 2), x).ok


def test_inputs_are_not_modified_and_the_rng_state_is_kept():
    inputs = linear_inputs(torch.float32)
    before = [t.detach().clone() for t in inputs]
    state = torch.random.get_rng_state()
    gp.torch.check(linear, *inputs)
    assert all(torch.equal(a, b) for a, b in zip(before, inputs))
    assert all(t.grad is None for t in inputs)
    assert torch.equal(state, torch.random.get_rng_state())


def test_torch_randomness_is_held_fixed_between_evaluations():
    x = torch.linspace(-1, 1, 12, dtype=torch.float64, requires_grad=True)
    report = gp.torch.check(lambda x: torch.nn.functional.dropout(x.sin(), 0.5, training=True), x)
    assert report.ok and not any("non-deterministic" in note for note in report.notes)


class JitteryRowSum(torch.autograd.Function):
    """Row sums with a random relative jitter of 1e-5 on every call (like GPU atomics, only louder,
    so that two calls never agree by chance); the backward is exact."""

    rng = np.random.default_rng()

    @staticmethod
    def forward(ctx, x):
        jitter = torch.as_tensor(1 + 1e-5 * JitteryRowSum.rng.standard_normal(x.shape[0]), dtype=x.dtype)
        return x.sum(-1) * jitter

    @staticmethod
    def backward(ctx, g):
        return g[:, None].expand(-1, 16).clone()


def test_non_deterministic_function_is_noted_not_failed():
    x = torch.linspace(-2, 3, 32).reshape(2, 16).requires_grad_()
    report = gp.torch.check(JitteryRowSum.apply, x)
    assert report.status != "fail", report
    assert any("non-deterministic" in note for note in report.notes)


# -- modules ---------------------------------------------------------------------------------------


class MLP(torch.nn.Module):
    def __init__(self, dropout=0.0, batchnorm=False):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(3, 5),
            torch.nn.Tanh(),
            torch.nn.BatchNorm1d(5) if batchnorm else torch.nn.Identity(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(5, 2),
        )

    def forward(self, x):
        return self.layers(x)


def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, generator=generator), torch.randn(6, 2, generator=generator)


def snapshot(module):
    return {name: t.detach().clone() for name, t in [*module.named_parameters(), *module.named_buffers()]}


def test_module_parameters_are_named_and_checked():
    model = MLP().eval()
    report = gp.torch.check_module(model, torch.nn.MSELoss(), *batch())
    assert report.ok, report
    assert list(report.tensors) == ["layers.0.weight", "layers.0.bias", "layers.4.weight", "layers.4.bias"]
    assert report.tensors["layers.0.weight"].shape == (5, 3)


def test_module_with_a_wrong_custom_backward_is_blamed():
    class BuggyLinear(torch.nn.Linear):
        def forward(self, x):
            return LinearBiasBug.apply(x, self.weight, self.bias)

    model = torch.nn.Sequential(BuggyLinear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    report = gp.torch.check_module(model, lambda out: out.square().sum(), batch()[0])
    assert report.status == "fail" and report.failing == ("0.bias",)


def test_module_is_restored_bit_for_bit_even_when_the_loss_raises():
    model = MLP(batchnorm=True).train()
    before = snapshot(model)
    identities = {name: id(p) for name, p in model.named_parameters()}
    calls = []

    def vandal(output, target):
        calls.append(1)
        with torch.no_grad():  # mess with the real module, then fail midway through the check
            model.layers[0].weight.mul_(2.0)
            model.layers[2].running_mean.add_(1.0)
        if len(calls) == 7:
            raise RuntimeError("boom")
        return torch.nn.functional.mse_loss(output, target)

    with pytest.warns(UserWarning, match="train mode"), pytest.raises(gp.UserFunctionError, match="boom"):
        gp.torch.check_module(model, vandal, *batch())
    after = snapshot(model)
    assert all(torch.equal(before[k].view(torch.int32), after[k].view(torch.int32)) for k in before if before[k].is_floating_point())
    assert {name: id(p) for name, p in model.named_parameters()} == identities
    assert model.training and all(p.grad is None for p in model.parameters())


def test_train_mode_dropout_and_batchnorm_warn_and_still_check():
    model = MLP(dropout=0.3, batchnorm=True).train()
    before = snapshot(model)
    with pytest.warns(UserWarning, match=r"train mode with dropout/batch-norm layers \(layers.2, layers.3\)"):
        report = gp.torch.check_module(model, torch.nn.MSELoss(), *batch())
    assert report.ok, report
    assert any("train mode" in note for note in report.notes)
    assert all(torch.equal(before[k], v) for k, v in snapshot(model).items())  # running stats untouched


def test_frozen_parameters_are_listed():
    model = MLP().eval()
    model.layers[0].weight.requires_grad_(False)
    report = gp.torch.check_module(model, torch.nn.MSELoss(), *batch())
    assert "layers.0.weight" not in report.tensors
    assert any("requires_grad=False): layers.0.weight" in note for note in report.notes)
    assert not model.layers[0].weight.requires_grad


def test_module_argument_validation():
    with pytest.raises(gp.InvalidArgument, match="`module` must be a torch.nn.Module"):
        gp.torch.check_module(lambda x: x, torch.nn.MSELoss(), torch.ones(2))
    with pytest.raises(gp.InvalidArgument, match="`loss_fn` must be callable"):
        gp.torch.check_module(MLP(), None, torch.ones(2, 3))


# -- oracle="forward" ------------------------------------------------------------------------------


class Softplus(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return torch.nn.functional.softplus(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return t * torch.sigmoid(x)


class SoftplusSlightlyOff(Softplus):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x) * (1 + 2e-5)


def test_forward_oracle_checks_a_custom_backward_without_finite_differences():
    x = torch.linspace(-2, 2, 12).reshape(3, 4).requires_grad_()
    assert gp.torch.check(Softplus.apply, x, oracle="forward").ok
    exact = gp.torch.check(SoftplusSlightlyOff.apply, x, oracle="forward")
    differences = gp.torch.check(SoftplusSlightlyOff.apply, x, shadow=False)  # float32 differences
    assert exact.status == "fail" and exact.method == "forward" and exact.reference == "forward"
    assert differences.status == "pass" and exact.resolution < differences.resolution / 2
    assert gp.torch.check(SoftplusSlightlyOff.apply, x).status == "fail"  # so does the float64 reference


class OldStyleExp(torch.autograd.Function):  # no setup_context: forward AD works, vmap does not
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return x.exp()

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved_tensors[0].exp()

    @staticmethod
    def jvp(ctx, t):
        return t * ctx.saved_tensors[0].exp()


def counting(function):
    def counted(*args):
        counted.calls += 1
        return function(*args)

    counted.calls = 0
    return counted


def test_probes_are_batched_with_vmap_where_exact_and_looped_elsewhere():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    composite = counting(lambda x, w: torch.nn.functional.layer_norm(x, (4,), w).sin())
    report = gp.torch.check(composite, x, w)
    assert report.ok and composite.calls < report.nfev / 4  # many probes per call
    looped = counting(lambda x, w: torch.nn.functional.layer_norm(x, (4,), w).sin())
    report = gp.torch.check(looped, x, w, vectorized=False)
    assert report.ok and looped.calls >= report.nfev
    old_style = counting(OldStyleExp.apply)
    report = gp.torch.check(old_style, x)
    assert report.ok and old_style.calls >= report.nfev


def test_a_directional_check_of_many_parameters_calls_once_per_point_unless_told_to_batch():
    """Batches pay where a point is cheap to copy or many go per call (elements probed); a
    directional check of many parameters evaluates a few points at a time, each moving all of them."""
    x = torch.randn(130, 130, dtype=torch.float64, requires_grad=True)  # above `BATCH_POINTS_LIMIT`
    looped = counting(lambda x: torch.tanh(x).sin())
    report = gp.torch.check(looped, x)
    assert report.ok and report.strategy == "directional" and not report.options.get("vectorized")
    assert looped.calls >= report.nfev
    batched = counting(lambda x: torch.tanh(x).sin())
    report = gp.torch.check(batched, x, vectorized=True)
    assert report.ok and report.options["vectorized"] is True and batched.calls < report.nfev
    small = counting(lambda x: torch.tanh(x).sin())  # few parameters: batched, directional or not
    report = gp.torch.check(small, x[:40, :40].detach().requires_grad_())
    assert report.ok and report.strategy == "directional" and report.options["vectorized"] is True
    assert small.calls < report.nfev


class _ParameterSizedCopies(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts torch's copies of at least `size` elements (a tensor made from host values, a cast,
    a clone) made outside the user's function, and the storages the function was called on."""

    COPIES = ("aten._to_copy", "aten.clone", "aten.copy_", "aten._copy_from")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size, self.copies, self.inside, self.storages = size, 0, False, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.inside and str(func).startswith(self.COPIES) and isinstance(out, torch.Tensor) and out.numel() >= self.size:
            self.copies += 1
        return out

    def watch(self, fn):
        def watched(*tensors):
            self.storages.append(tensors[0].untyped_storage().data_ptr())
            self.inside = True
            try:
                return fn(*tensors)
            finally:
                self.inside = False

        return watched


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_points_reach_a_torch_function_without_a_copy_of_the_parameters_each(dtype):
    """Issue 15 (b) without a device: torch copies the parameters a fixed number of times per
    check, not once per point; in float64 the function's tensors view the core's vectors, reused
    from point to point."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(130, 130, dtype=dtype, generator=generator).requires_grad_()  # directional, one point per call
    counter = _ParameterSizedCopies(x.numel())
    with counter:
        report = gp.torch.check(counter.watch(lambda x: torch.tanh(x).sin().sum()), x)
    assert report.ok and report.strategy == "directional" and report.nfev >= 12
    assert counter.copies <= 1  # the first call's, on a copy of the inputs
    if dtype == torch.float64:  # float32 points are cast on the host, by numpy, into arrays of their own
        # The float64 points share a few reused vectors, however many points there are.
        assert len(set(counter.storages)) <= 3 < len(counter.storages)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_the_first_call_is_the_loss_at_the_starting_point(dtype):
    """Issue 15 (b): the outputs the adapter computes at the start (to learn their shapes) are
    the core's loss there, not one more forward pass; a later call there is evaluated again."""
    x0 = torch.randn(30, 20, dtype=dtype, generator=torch.Generator().manual_seed(0))
    calls = []

    def fn(x):
        if not torch.is_grad_enabled():  # a loss evaluation, not `grad`'s forward
            calls.append(torch.equal(x.detach(), x0))
        return torch.tanh(x).sum()

    report = gp.torch.check(fn, x0.clone().requires_grad_(), strategy="directional", vectorized=False)
    assert report.ok and calls[0]
    # One of the core's evaluations (it was one more); under the float64 reference of float32
    # tensors the core evaluates the start in float64, which the first call was not.
    assert len(calls) == report.nfev + (dtype != torch.float64)


class JitteryBackward(torch.autograd.Function):
    """tanh, whose backward adds a relative jitter of 1e-6 on every call (atomics, only louder)."""

    rng = np.random.default_rng(0)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        jitter = torch.as_tensor(1 + 1e-6 * JitteryBackward.rng.standard_normal(x.shape), dtype=x.dtype)
        return g / torch.cosh(x) ** 2 * jitter


def test_grad_at_the_start_is_one_forward_and_two_backwards():
    """Issue 15 (b): `grad` is called twice at the start to see whether it repeats; the adapter runs
    the forward once and the backward twice through it (as gradcheck does), and a backward that
    does not repeat is still noted and its spread allowed for."""
    x0 = torch.randn(40, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    forwards = []

    def fn(x):
        if torch.is_grad_enabled():
            forwards.append(torch.equal(x.detach(), x0))
        return JitteryBackward.apply(x).sum()

    report = gp.torch.check(fn, x0.clone().requires_grad_(), strategy="directional", vectorized=False)
    assert forwards == [True]  # two calls of `grad` at the start, one forward
    assert report.status != "fail" and any("`grad` is non-deterministic" in note for note in report.notes)
    exact = gp.torch.check(lambda x: torch.tanh(x).sum(), x0.clone().requires_grad_())
    assert exact.ok and not any("non-deterministic" in note for note in exact.notes)


def test_forward_oracle_batches_with_vmap_and_falls_back_to_a_loop():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    composite = counting(lambda x, w: torch.nn.functional.layer_norm(x, (4,), w))
    report = gp.torch.check(composite, x, w, oracle="forward", vectorized=False)
    assert report.ok and report.method == "forward"
    assert composite.calls < report.nfev - 16  # the 2 x 16 tangents took a few batched calls, not 32
    old_style = counting(OldStyleExp.apply)
    report = gp.torch.check(old_style, x, oracle="forward", vectorized=False)
    assert report.ok and old_style.calls >= report.nfev  # one call per tangent


def test_forward_oracle_needs_forward_mode():
    with pytest.raises(gp.InvalidArgument, match=r"needs forward-mode AD.*`jvp` staticmethod"):
        gp.torch.check(linear, *linear_inputs(torch.float64), oracle="forward")
    with pytest.raises(gp.InvalidArgument, match="`oracle` must be 'differences' or 'forward'"):
        gp.torch.check(linear, *linear_inputs(torch.float64), oracle="exact")


def test_forward_oracle_on_a_module():
    report = gp.torch.check_module(MLP().eval().double(), torch.nn.MSELoss(), *(t.double() for t in batch()), oracle="forward")
    assert report.ok and report.method == "forward"


def test_a_ragged_target_does_not_hide_a_bug_in_the_other_input():
    """`hinge_embedding_loss` with its target exactly at +-1 switches branch at any move of the
    target. Measuring `grad`'s own rounding moved the target too, so the input's whole gradient
    switched with it; once those second differences were no longer all taken for kinks, they
    widened the input's bars to 10x its gradient and a planted 1.01x was "too noisy" (PyTorch's
    operator set: 6 samples). The target is held while `grad`'s rounding is measured."""

    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.view_as(a)

        @staticmethod
        def backward(ctx, g):
            return g * 1.01

    torch.manual_seed(0)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64, requires_grad=True)
    right = gp.torch.check(lambda a, b: torch.nn.functional.hinge_embedding_loss(a, b), x, target)
    assert right.tensors["a"].status == "pass" and right.tensors["b"].reason == "noise", right
    wrong = gp.torch.check(lambda a, b: torch.nn.functional.hinge_embedding_loss(Scaled.apply(a), b), x, target)
    assert wrong.tensors["a"].status == "fail", wrong
