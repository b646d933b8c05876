"""gp.jax.check: custom_vjp, custom_jvp, pure_callback, pytrees, float32/float64, oracle='forward'."""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install gradprobe[jax])")
jnp = pytest.importorskip("jax.numpy")

import gradprobe as gp  # noqa: E402


def _clip_fwd(x):
    return jnp.clip(x, -1.0, 1.0), x


@jax.custom_vjp
def clip(x):
    return jnp.clip(x, -1.0, 1.0)


clip.defvjp(_clip_fwd, lambda x, g: (jnp.where((x > -1) & (x < 1), g, 0.0),))


@jax.custom_vjp
def clip_straight_through(x):
    return jnp.clip(x, -1.0, 1.0)


clip_straight_through.defvjp(_clip_fwd, lambda x, g: (g,))  # the bug: gradient passed where clipped

X = jnp.array([[-1.7, -0.4, 0.2], [0.8, 1.3, -0.05]])


def test_custom_vjp_right_and_wrong_in_float32_by_default():
    report = gp.jax.check(clip, X)
    assert report.ok and report.tensors["x"].shape == (2, 3)
    wrong = gp.jax.check(clip_straight_through, X)
    assert wrong.status == "fail" and wrong.failing == ("x",)
    assert {e.index for e in wrong.tensors["x"].worst[:2]} == {(0, 0), (1, 1)}  # the two clipped elements


def test_float32_by_default_and_float64_with_x64():
    seen = []

    def recording(x):
        seen.append(x.dtype)
        return clip(x)

    report = gp.jax.check(recording, X)
    # float32 arguments: the gradient under test in float32, the numerical side in float64 (JAX's
    # x64 mode on for those calls only, and off again afterwards)
    assert seen and set(seen) == {np.dtype("float32"), np.dtype("float64")} and report.reference == "float64"
    assert jnp.zeros(1).dtype == jnp.float32
    native = []

    def recording_again(x):  # a fresh function: a jitted one records only when it is traced
        native.append(x.dtype)
        return clip(x)

    assert gp.jax.check(recording_again, X, shadow=False).ok and set(native) == {np.dtype("float32")}
    enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else __import__("jax.experimental").experimental.enable_x64
    with enable_x64(True):
        doubles = []

        def recording64(x):
            doubles.append(x.dtype)
            return clip(x)

        report = gp.jax.check(recording64, jnp.asarray(np.asarray(X), dtype=jnp.float64))
        assert report.ok and set(doubles) == {np.dtype("float64")} and report.reference == "native"
        assert report.resolution < 1e-8
        assert gp.jax.check(clip_straight_through, jnp.asarray(np.asarray(X), dtype=jnp.float64)).status == "fail"


def test_pytrees_are_named_by_path_and_integers_are_skipped():
    def mlp(params, x, labels):
        h = jnp.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
        logits = h @ params["out"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), labels])

    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"layers": [{"w": jax.random.normal(k1, (3, 4)), "b": jnp.zeros(4)}], "out": jax.random.normal(k2, (4, 2))}
    x = jax.random.normal(k3, (5, 3))
    labels = jnp.array([0, 1, 1, 0, 1])
    report = gp.jax.check(mlp, params, x, labels)
    assert report.ok, report
    assert list(report.tensors) == ["params.layers.0.b", "params.layers.0.w", "params.out", "x"]
    assert any("arguments not checked: `labels` (dtype int32)" in note for note in report.notes)
    only_params = gp.jax.check(mlp, params, x, labels, argnums=0)
    assert "x" not in only_params.tensors


def test_custom_jvp_and_the_forward_oracle():
    @jax.custom_jvp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defjvp(lambda primals, tangents: (softplus(primals[0]), jax.nn.sigmoid(primals[0]) * tangents[0]))
    x = jnp.linspace(-3.0, 3.0, 8)
    assert gp.jax.check(softplus, x).ok and gp.jax.check(softplus, x, mode="both").ok
    # The rule would be its own reference (a wrong one passed this way): refused, with the fix.
    with pytest.raises(gp.InvalidArgument, match="oracle='differences'"):
        gp.jax.check(softplus, x, oracle="forward")
    # JAX's own rules (logaddexp's custom_jvp) are a reference: exact derivatives, finer than differences.
    builtin = lambda x: jnp.logaddexp(x, 0.0)  # noqa: E731
    differences = gp.jax.check(builtin, x, shadow=False)  # float32 differences
    exact = gp.jax.check(builtin, x, oracle="forward")
    assert differences.ok and exact.ok and exact.method == "forward"
    assert exact.resolution < differences.resolution


def test_forward_oracle_refuses_custom_vjp_with_the_fix():
    @jax.custom_vjp
    def custom(x):
        return jnp.sin(x) * x

    custom.defvjp(lambda x: (custom(x), x), lambda x, g: (g * (jnp.cos(x) * x + jnp.sin(x)) * (1 + 1e-3),))
    x = jnp.linspace(0.1, 2.0, 6)
    with pytest.raises(gp.InvalidArgument, match="custom_vjp function has no JVP: use jax.custom_jvp") as error:
        gp.jax.check(custom, x, oracle="forward")
    assert error.value.argument == "oracle"
    assert gp.jax.check(custom, x).status == "fail"  # the default finite differences catch the 1e-3


def test_pure_callback_inside_custom_vjp():
    def host_cube(x):
        return np.asarray(x) ** 3

    @jax.custom_vjp
    def cube(x):
        return jax.pure_callback(host_cube, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    cube.defvjp(lambda x: (cube(x), x), lambda x, g: (3 * x**2 * g,))

    @jax.custom_vjp
    def cube_wrong(x):
        return cube(x)

    cube_wrong.defvjp(lambda x: (cube(x), x), lambda x, g: (2 * x**2 * g,))
    x = jnp.array([0.5, -1.0, 1.5])
    assert gp.jax.check(cube, x).ok
    assert gp.jax.check(cube_wrong, x).tensors["x"].diagnosis == "0.6667x (= 2/3)"


def test_tuple_outputs_and_the_cotangent_note():
    report = gp.jax.check(lambda x: (jnp.sin(x), {"e": jnp.exp(x).sum()}), jnp.array([0.1, 0.7]))
    assert report.ok and any("cotangent" in note for note in report.notes)


def test_argument_validation():
    with pytest.raises(gp.InvalidValue, match="no floating-point array"):
        gp.jax.check(lambda i: i * 2, jnp.arange(3))
    with pytest.raises(gp.InvalidArgument, match="`argnums` must be argument positions"):
        gp.jax.check(jnp.sin, X, argnums=3)
    with pytest.raises(gp.InvalidArgument, match="`oracle` must be 'differences' or 'forward'"):
        gp.jax.check(jnp.sin, X, oracle="jvp")
    with pytest.raises(gp.InvalidArgument, match="`fn` must be callable"):
        gp.jax.check(None, X)


def test_an_attention_mask_of_minus_inf_is_held_fixed_and_a_wrong_rule_still_fails():
    scores = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    mask = jnp.zeros((4, 6)).at[:, 4:].set(-jnp.inf)
    report = gp.jax.check(lambda s, m: jax.nn.softmax(s + m, -1), scores, mask)
    assert report.status == "pass", report
    assert report.tensors["m"].counts["pass"] == 16 and report.tensors["m"].coverage == pytest.approx(16 / 24)
    assert any(note.startswith("`m`: 8 of its 24 elements are NaN or inf") for note in report.notes)

    @jax.custom_vjp
    def softmax(s):
        return jax.nn.softmax(s, -1)

    def backward(y, g):  # doubled
        return (2 * y * (g - (g * y).sum(-1, keepdims=True)),)

    softmax.defvjp(lambda s: (softmax(s), softmax(s)), backward)
    assert gp.jax.check(lambda s, m: softmax(s + m), scores, mask).failing == ("s", "m")


def test_a_cast_inside_the_function_is_named_under_the_float64_reference():
    # JAX cannot be kept from casting: on float64 arguments this function still computes in
    # float32, which the report must say rather than let "reference float64" stand alone.
    X = jax.random.normal(jax.random.PRNGKey(1), (32, 16))
    W = jax.random.normal(jax.random.PRNGKey(2), (16, 8)) * 0.3
    cast = gp.jax.check(lambda W: jnp.mean(jnp.tanh((X @ W).astype(jnp.float32)) ** 2), W)
    assert cast.reference == "float64" and cast.status != "fail"
    assert any("computes in float32" in note for note in cast.notes), cast.notes
    plain = gp.jax.check(lambda W: jnp.mean(jnp.tanh(X @ W) ** 2), W)  # X: a closed-over float32 array
    assert plain.status == "pass" and not any("not float64 throughout" in note for note in plain.notes)


def test_a_rule_replaced_between_two_checks_of_the_same_function_is_checked_as_it_is_now():
    # JAX keys compiled code on the function object: the second check once reused the first's trace,
    # passing a rule that had since been replaced by a wrong one.
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 5))
    W = jax.random.normal(jax.random.PRNGKey(1), (5, 3))

    @jax.custom_vjp
    def dense(x, w):
        return x @ w

    def forward(x, w):
        return x @ w, (x, w)

    def right(saved, g):
        x, w = saved
        return g @ w.T, x.T @ g

    def doubled(saved, g):
        x, w = saved
        return g @ w.T, 2 * (x.T @ g)

    def f(W):
        return jnp.sum(jnp.tanh(dense(x, W)) ** 2)

    dense.defvjp(forward, right)
    assert gp.jax.check(f, W).status == "pass"
    dense.defvjp(forward, doubled)
    assert gp.jax.check(f, W).status == "fail"
    dense.defvjp(forward, right)
    assert gp.jax.check(f, W).status == "pass"


def test_vmap_batches_the_points_of_small_checks_only():
    """As gp.torch.check: a directional check of many parameters evaluates one point per call, a
    check of few in vmap batches (where those are exact)."""
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(0).standard_normal((130, 130)))
        report = gp.jax.check(jnp.tanh, x)
        assert report.ok and report.strategy == "directional" and not report.options.get("vectorized")
        small = gp.jax.check(jnp.tanh, x[:3, :3])
        assert small.ok and small.strategy == "full" and small.options["vectorized"] is True


def test_a_function_refusing_float64_keeps_one_program_for_its_gradient():
    # A new user's case: a float32 conv closing over its float32 batch refuses the float64 reference.
    # That failure dropped the jit, so grad's second call ran eagerly, rounded differently, and the
    # report said "`grad` is non-deterministic" of a deterministic jax.grad.
    traced = []

    def loss(w):
        if w.dtype == jnp.float64:
            raise TypeError("float32 only")
        traced.append(isinstance(w, jax.core.Tracer))  # False: called eagerly
        return jnp.mean(jnp.tanh(w) ** 2)

    report = gp.jax.check(loss, jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32))
    assert report.reference == "native" and report.ok, report
    assert traced and all(traced), traced
