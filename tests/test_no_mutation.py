"""No mutation, ever: the user's inputs are bit-for-bit the same after every check.

The suite-wide guard (tests/_guard.py, installed by an autouse fixture in conftest.py) hashes the
inputs of every public gradprobe call in every test. The tests here check the guard itself, and
drive checks into the situations where a mutation would most likely slip through: a loss that
raises or is interrupted midway, functions that mutate what they are given, every method,
strategy, executor and adapter available.
"""

import inspect

import numpy as np
import pytest
from _guard import Guard, MutationDetected, changes, fingerprint

import gradprobe as gp
from gradprobe.strategies import _options as _options


def user_params():
    frozen = np.array([[0.3, -1.2], [0.7, 0.4]])
    frozen.setflags(write=False)
    return {
        "W": np.asfortranarray(np.array([[1.0, -0.5, 0.25], [0.5, 2.0, -1.0]])),
        "b": np.arange(10.0)[::4] / 7,  # non-contiguous
        "frozen": frozen,
        "s": 0.75,
        "h": np.float32([0.5, -0.25]),
        "nested": [np.array(1.5), (np.array([0.1, 0.2]),)],
    }


def total(p):
    return float(
        np.sum(np.tanh(p["W"]) ** 2) + np.sum(p["b"] ** 3) + np.sum(np.sin(p["frozen"])) + p["s"] ** 2
        + float(np.sum(p["h"].astype(np.float64) ** 2)) + float(p["nested"][0]) ** 3 + np.sum(np.exp(p["nested"][1][0]))
    )  # fmt: skip


def total_grad(p):
    t = np.tanh(p["W"])
    return {
        "W": 2 * t * (1 - t**2),
        "b": 3 * p["b"] ** 2,
        "frozen": np.cos(p["frozen"]),
        "s": 2 * p["s"],
        "h": 2 * p["h"].astype(np.float64),
        "nested": [3 * p["nested"][0] ** 2, (np.exp(p["nested"][1][0]),)],
    }


def snapshot(*args, **kwargs):
    return fingerprint(args, kwargs)


# -- the guard is installed and sees every public entry point ------------------------------------


def test_every_public_function_is_guarded(no_mutation_guard):
    assert getattr(gp.check, "__gradprobe_guarded__", False)
    public = {name for name in gp.__all__ if inspect.isfunction(getattr(gp, name))}
    assert public, "gradprobe exports functions"
    for name in public:
        assert getattr(getattr(gp, name), "__gradprobe_guarded__", False), name
    before = no_mutation_guard.calls
    gp.check(total, total_grad, user_params())
    assert no_mutation_guard.calls > before


# -- the guard catches what it must catch ---------------------------------------------------------


def mutating_call(action):
    def entry_point(*args, **kwargs):
        action(*args, **kwargs)
        return "done"

    return Guard().wrap(entry_point, "entry_point")


@pytest.mark.parametrize(
    "name, action",
    [
        ("write into an array", lambda p: p["W"].__setitem__((0, 0), 9.0)),
        ("flip a bit", lambda p: p["b"].view(np.uint64).__setitem__(0, p["b"].view(np.uint64)[0] ^ 1)),
        ("replace a dict entry with an equal copy", lambda p: p.__setitem__("W", p["W"].copy())),
        ("add a dict entry", lambda p: p.__setitem__("extra", 1.0)),
        ("make an array writeable", lambda p: p["frozen"].setflags(write=True)),
        ("replace a list entry", lambda p: p["nested"].__setitem__(0, np.array(1.5))),
        ("change a float entry", lambda p: p.__setitem__("s", 0.5)),
    ],
)
def test_guard_detects_mutation_of_arguments(name, action):
    with pytest.raises(MutationDetected):
        mutating_call(action)(user_params())


def test_guard_detects_mutation_of_captured_arrays_but_not_of_logs():
    data, log = np.ones(3), []

    def loss(p):
        log.append(p)  # a log of calls is the user's business
        return float(np.sum(data * p))

    assert mutating_call(lambda f, p: f(p))(loss, np.zeros(3)) == "done"
    with pytest.raises(MutationDetected, match="closure data"):
        mutating_call(lambda f, p: data.__setitem__(0, 2.0))(loss, np.zeros(3))


def test_guard_checks_also_when_the_call_raises():
    def interrupted(p):
        p["W"][0, 0] = 9.0
        raise KeyboardInterrupt

    with pytest.raises(MutationDetected):
        Guard().wrap(interrupted, "interrupted")(user_params())


def test_guard_detects_torch_module_changes():
    torch = pytest.importorskip("torch")

    def fresh():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))

    actions = {
        "parameter value": lambda m: m[0].weight.data[0, 0].add_(1e-6),
        "parameter replaced": lambda m: setattr(m[0], "weight", torch.nn.Parameter(m[0].weight.detach().clone())),
        "buffer value": lambda m: m[1].running_mean.add_(1.0),
        "requires_grad": lambda m: m[0].bias.requires_grad_(False),
        "grad left behind": lambda m: setattr(m[0].weight, "grad", torch.zeros_like(m[0].weight)),
        "training flag": lambda m: m.eval(),
        "hook left behind": lambda m: m[0].register_forward_hook(lambda *a: None),
    }
    for name, action in actions.items():
        with pytest.raises(MutationDetected):
            mutating_call(action)(fresh())
        with pytest.raises(MutationDetected):  # a module captured by the loss counts too
            model = fresh()
            mutating_call(lambda f: action(model))(lambda x: model(x).sum())
    assert mutating_call(lambda m: m[0].weight.data.mul_(1.0))(fresh()) == "done"  # same bits


def test_fingerprint_is_stable_and_ignores_copies_elsewhere():
    p = user_params()
    first = snapshot(p)
    copy = {k: v for k, v in p.items()}
    copy["W"] = copy["W"] * 2
    assert changes(first, snapshot(p)) == []


# -- checks never mutate, whatever the user's functions do ---------------------------------------

METHODS = ["richardson", "central", "complex"]


def check_options():
    """Every strategy and method that gp.check accepts, plus the executors it supports."""
    options = [{"method": m} for m in METHODS]
    options += [{"strategy": s} for s in _options.STRATEGIES if s != "auto"]
    if "executor" in inspect.signature(gp.check).parameters:
        options.append({"executor": "serial-thread-pool"})
    return options


def resolve(options):
    if options.get("executor") == "serial-thread-pool":
        from concurrent.futures import ThreadPoolExecutor

        return {**options, "executor": ThreadPoolExecutor(2)}
    return options


def complex_safe_total(p):
    # analytic in every parameter, so method="complex" accepts it
    return (
        np.sum(np.tanh(p["W"]) ** 2) + np.sum(p["b"] ** 3) + np.sum(np.sin(p["frozen"])) + p["s"] ** 2
        + np.sum(p["h"] ** 2) + p["nested"][0] ** 3 + np.sum(np.exp(p["nested"][1][0]))
    )  # fmt: skip


@pytest.mark.parametrize("options", check_options(), ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_check_leaves_inputs_untouched(options):
    params = user_params()
    if options.get("method") == "complex":  # float32 with the complex step: see test_bad_input
        params["h"] = params["h"].astype(np.float64)
    before = snapshot(params)
    report = gp.check(complex_safe_total, total_grad, params, **resolve(options))
    assert report.status == "pass", report
    assert changes(before, snapshot(params)) == []
    assert not params["frozen"].flags.writeable and params["W"].flags.f_contiguous


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("when", [1, 2, 4, 20, 60, 10_000])
@pytest.mark.parametrize("signal", [KeyboardInterrupt, Interrupt, FloatingPointError])
def test_loss_that_raises_midway_leaves_inputs_untouched(when, signal):
    params = user_params()
    before = snapshot(params)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == when:
            p["W"][...] = np.nan  # the loss's own copy: it must not matter
            raise signal("stop")
        return total(p)

    if when > 1000:
        assert gp.check(loss, total_grad, params).ok
    elif when == 1 and signal is not KeyboardInterrupt:
        # The first call is the float64 reference's try (`h` is float32): a loss that raises there
        # is evaluated in its own dtypes instead, and the report says why.
        report = gp.check(loss, total_grad, params)
        assert report.ok and report.reference == "native"
        assert any("could not be evaluated in float64" in note and "stop" in note for note in report.notes)
    elif signal is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            gp.check(loss, total_grad, params)
    else:
        with pytest.raises(gp.UserFunctionError) as info:
            gp.check(loss, total_grad, params)
        assert isinstance(info.value.__cause__, signal)
    assert changes(before, snapshot(params)) == []


def test_functions_that_mutate_their_input_reach_nothing_of_ours():
    params = user_params()
    before = snapshot(params)

    def loss(p):
        value = total(p)
        for key in list(p):
            p[key] = None  # vandalise the copy it was given
        return value

    def grad(p):
        g = total_grad(p)
        p["W"] *= 100
        p.clear()
        return g

    assert gp.check(loss, grad, params).ok
    assert changes(before, snapshot(params)) == []


@pytest.mark.parametrize("strategy", ["full", "directional"])
def test_arrays_a_loss_keeps_are_never_overwritten(strategy):
    # Points through every parameter are made in a vector whose pieces the loss gets, reused for
    # the next point only when the loss kept nothing of it (see `Objective._handoff_vector`).
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((40, 30)), "b": rng.standard_normal(30)}
    kept, some = [], []

    def loss(p):
        value = float(np.sum(np.tanh(p["W"] @ p["b"]) ** 2))
        if len(some) % 3 == 0 and len(kept) < 20:  # keeps some calls' arrays (a history, a cache)
            kept.append((p["W"], p["b"], p["W"].copy(), p["b"].copy()))
        some.append(None)
        p["W"] *= 100.0  # and scribbles on every call's arrays afterwards
        return value

    def grad(p):
        z = np.tanh(p["W"] @ p["b"])
        d = 2 * z * (1 - z**2)
        kept.append((p["W"], p["b"], p["W"].copy(), p["b"].copy()))  # and so does grad, on both calls
        g = {"W": np.outer(d, p["b"]), "b": p["W"].T @ d}
        p["W"] *= 100.0
        return g

    report = gp.check(loss, grad, params, strategy=strategy)
    assert report.ok and len(kept) > 5
    for W, b, W_then, b_then in kept:
        np.testing.assert_array_equal(W, W_then * 100.0)
        np.testing.assert_array_equal(b, b_then)


def test_gradient_arrays_returned_by_the_user_are_not_written():
    g = {"x": np.array([2.0, -4.0])}
    g["x"].setflags(write=False)
    before = snapshot(g)
    report = gp.check(lambda p: float(np.sum(p["x"] ** 2)), lambda p: g, {"x": np.array([1.0, -2.0])})
    assert report.ok and changes(before, snapshot(g)) == []


def test_check_vjp_leaves_inputs_untouched():
    A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    x = {"x": np.array([0.1, 0.2]), "frozen": user_params()["frozen"]}
    before = snapshot(x, A)
    calls = []

    def f(p):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return A @ np.sin(p["x"]) + np.sum(p["frozen"])

    def vjp(p, v):
        return {"x": np.cos(p["x"]) * (A.T @ v), "frozen": np.full((2, 2), np.sum(v))}

    with pytest.raises(KeyboardInterrupt):
        gp.check_vjp(f, vjp, x)
    assert gp.check_vjp(lambda p: A @ np.sin(p["x"]) + np.sum(p["frozen"]), vjp, x).ok
    assert changes(before, snapshot(x, A)) == []


def test_assert_gradients_leaves_inputs_untouched():
    params = user_params()
    before = snapshot(params)
    with pytest.raises(gp.GradientMismatch):
        gp.assert_gradients(total, lambda p: {**total_grad(p), "s": 3 * p["s"]}, params)
    assert changes(before, snapshot(params)) == []


def module_level_loss(p):  # picklable, for process pools
    return total(p)


@pytest.mark.slow
@pytest.mark.parametrize("interrupt_at", [None, 40])
def test_process_pool_leaves_inputs_untouched(interrupt_at):
    if "executor" not in inspect.signature(gp.check).parameters:
        pytest.skip("no executor= in this tree")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    params = user_params()
    before = snapshot(params)
    # spawn, not fork: other tests may have started JAX's threads, and forking those deadlocks
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        if interrupt_at is None:
            assert gp.check(module_level_loss, total_grad, params, executor=pool).ok
        else:
            calls = []

            def grad(p):  # the interruption comes from the main process, mid-check
                calls.append(1)
                if len(calls) == 2:
                    raise KeyboardInterrupt
                return total_grad(p)

            with pytest.raises(KeyboardInterrupt):
                gp.check(module_level_loss, grad, params, executor=pool)
    assert changes(before, snapshot(params)) == []


def test_torch_inputs_and_modules_are_restored_bit_for_bit():
    torch = pytest.importorskip("torch")
    gpt = gp.torch
    torch.manual_seed(0)
    x = torch.randn(3, 2, dtype=torch.float64).requires_grad_()
    w = torch.randn(2, dtype=torch.float32).requires_grad_()
    x.grad = torch.ones_like(x)  # a .grad the user had: it must survive the check
    before = snapshot(x, w)
    calls = []

    def fn(a, b):
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return (a.sin() @ b.double()).sum()

    with pytest.raises(KeyboardInterrupt):
        gpt.check(fn, x, w)
    assert gpt.check(lambda a, b: (a.sin() @ b.double()).sum(), x, w).status != "fail"
    assert changes(before, snapshot(x, w)) == [] and torch.equal(x.grad, torch.ones_like(x))

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3), torch.nn.Tanh()).double().eval()
    before = snapshot(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calls.clear()

    def loss_fn(out):
        calls.append(1)
        if len(calls) == 9:
            raise RuntimeError("out of memory")
        return out.pow(2).sum()

    with pytest.raises(gp.UserFunctionError):
        gpt.check_module(model, loss_fn, torch.randn(4, 2, dtype=torch.float64))
    assert gpt.check_module(model, lambda out: out.pow(2).sum(), torch.randn(4, 2, dtype=torch.float64)).ok
    assert changes(before, snapshot(model)) == []
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and not model.training


def test_jax_inputs_are_untouched():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    params = {"w": jnp.array([0.5, -1.0]), "b": np.array([0.25, 2.0])}
    before = snapshot(params)
    calls = []

    def fn(p):
        calls.append(1)
        if len(calls) == 1:  # JAX traces the Python function once, then runs it compiled
            raise KeyboardInterrupt
        return jnp.sum(jnp.sin(p["w"]) * p["b"])

    with pytest.raises(KeyboardInterrupt):
        gp.jax.check(fn, params)
    assert gp.jax.check(lambda p: jnp.sum(jnp.sin(p["w"]) * p["b"]), params).status != "fail"
    assert changes(before, snapshot(params)) == []


def test_complex_inputs_are_untouched():
    """Complex arrays and tensors, held inside a check as their real and imaginary parts, come back
    bit for bit: also when the loss writes into what it gets, or is interrupted midway."""
    z = np.array([[1 + 2j, -0.5 + 0.25j], [2 - 1j, 0.75 + 0.5j]])
    z.setflags(write=False)
    params = {"z": z, "zt": np.asfortranarray(z.astype(np.complex64).T)}
    before = snapshot(params)
    calls = []

    def scribbling(p):
        calls.append(1)
        value = float(sum(np.sum(np.abs(v.astype(np.complex128)) ** 2) for v in p.values()))
        for v in p.values():
            v *= 2  # its own copy
        if len(calls) == 30:
            raise KeyboardInterrupt
        return value

    with pytest.raises(KeyboardInterrupt):
        gp.check(scribbling, lambda p: {k: 2 * v for k, v in p.items()}, params)
    calls.append(1)  # past the interrupt: the same loss now runs to the end
    for strategy in ("full", "directional", "sample"):
        gp.check(scribbling, lambda p: {k: np.conj(2 * v) for k, v in p.items()}, params, strategy=strategy)
    assert changes(before, snapshot(params)) == [] and not z.flags.writeable
    torch = pytest.importorskip("torch")
    t = torch.tensor(z, requires_grad=True)
    saved = t.detach().clone()
    assert gp.torch.check(lambda t: (t.abs() ** 2).sum(), t).ok
    assert torch.equal(torch.view_as_real(t.detach()), torch.view_as_real(saved)) and t.grad is None


def test_checks_run_by_the_command_line_are_guarded(no_mutation_guard, tmp_path, capsys):
    from gradprobe.tools._cli import main

    problem = tmp_path / "problem.py"
    problem.write_text(
        "import numpy as np\n"
        "def problem():\n"
        "    return (lambda p: float(np.sum(p ** 3)), lambda p: 3 * p ** 2, np.array([1.0, -2.0]))\n"
    )
    before = no_mutation_guard.calls
    assert main(["check", f"{problem}:problem"]) == 0
    assert no_mutation_guard.calls > before
    assert "PASS" in capsys.readouterr().out
