"""Complex parameters and complex functions.

A real loss of complex parameters has one gradient and two ways to write it as a complex number:
PyTorch's (also `gp.check`'s) dL/dRe + i dL/dIm and JAX's dL/dRe - i dL/dIm. Each adapter checks
its framework's; a gradient in the other convention fails as "conjugated". A complex function is
checked through the real loss Re <v, f(x)>. The report speaks of the complex tensors as passed:
one tensor each, indexed in its own shape, with complex values.
"""

import numpy as np
import pytest

import gradprobe as gp

DTYPES = [pytest.param(np.complex64, id="complex64"), pytest.param(np.complex128, id="complex128")]
Z = np.array([[1 + 2j, -0.5 + 0.3j, 2 - 1j], [0.25 - 0.75j, -1.5 - 0.5j, 0.6 + 1.1j]])
W = np.array([0.5, -1.25, 2.0])


def loss(p):
    """w . |z|^2 summed over rows, plus Re z^3: not holomorphic in z, and real."""
    z, w = p["z"], p["w"]
    return float(np.sum(np.abs(z.astype(np.complex128)) ** 2 @ w) + np.sum((z.astype(np.complex128) ** 3).real))


def grad(p):
    """PyTorch's convention: dL/dRe + i dL/dIm; for Re h(z) with h holomorphic, conj(h'(z))."""
    z, w = p["z"].astype(np.complex128), p["w"]
    return {"z": 2 * z * w + np.conj(3 * z**2), "w": np.sum(np.abs(z) ** 2, axis=0)}


def params(dtype=np.complex128):
    return {"z": Z.astype(dtype), "w": W.copy()}


# -- the convention, in the frameworks themselves ---------------------------------------------------


def test_each_framework_gives_its_own_convention_for_the_worked_example():
    """|z|^2 + Re z at z = 1+2j: PyTorch's gradient is 3+4j, JAX's 3-4j; gp.check takes PyTorch's."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    z = torch.tensor(1 + 2j, dtype=torch.complex128, requires_grad=True)
    (z.abs() ** 2 + z.real).backward()
    assert complex(z.grad) == 3 + 4j
    assert complex(jax.grad(lambda z: jax.numpy.abs(z) ** 2 + jax.numpy.real(z))(jax.numpy.complex64(1 + 2j))) == 3 - 4j

    def worked(z):
        return abs(z) ** 2 + z.real

    assert gp.check(worked, lambda z: 2 * z + 1, 1 + 2j).status == "pass"
    report = gp.check(worked, lambda z: np.conj(2 * z + 1), 1 + 2j)  # JAX's convention, in gp.check
    [element] = report.tensors["params"].worst
    assert report.tensors["params"].diagnosis == "conjugated"
    assert element.index == () and element.analytic == 3 - 4j and element.numeric == pytest.approx(3 + 4j)


# -- numpy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_right_gradient_passes_and_the_report_speaks_of_the_complex_tensor(dtype):
    report = gp.check(loss, grad, params(dtype))
    assert report.status == "pass", report
    assert list(report.tensors) == ["z", "w"]  # one tensor per complex array, not "z.real", "z.imag"
    z = report.tensors["z"]
    assert z.shape == Z.shape and sum(z.counts.values()) == Z.size
    assert z.analytic.shape == Z.shape and np.iscomplexobj(z.analytic) and np.iscomplexobj(z.worst[0].analytic)
    assert report.reference == ("float64" if dtype == np.complex64 else "native")


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_other_conventions_gradient_is_conjugated(dtype):
    def jax_convention(p):
        g = grad(p)
        return {**g, "z": np.conj(g["z"])}

    report = gp.check(loss, jax_convention, params(dtype))
    z = report.tensors["z"]
    assert report.failing == ("z",) and z.diagnosis == "conjugated" and z.diagnosis_kind == "conjugated"
    assert "dL/dRe + i dL/dIm" in z.hint and "dL/dRe - i dL/dIm" in z.hint
    expected = grad(params())["z"]
    for element in z.worst:
        assert element.analytic == pytest.approx(np.conj(expected[element.index]), rel=1e-6)
        assert element.numeric == pytest.approx(expected[element.index], rel=1e-4)
    assert z.counts["fail"] == Z.size  # every element has an imaginary part to conjugate
    assert f"{z.worst[0].analytic.imag: .6e}"[1:] in str(report)  # complex values in the text


def test_a_doubled_gradient_is_two_times():
    def doubled(p):
        g = grad(p)
        return {**g, "z": 2 * g["z"]}

    z = gp.check(loss, doubled, params()).tensors["z"]
    assert z.diagnosis == "2.00x" and z.scale == pytest.approx(2.0)


def test_a_transposed_gradient_of_a_complex_matrix_is_transposed():
    M = Z[:, :2].T @ Z[:, :2]  # (2, 2)

    def quartic(m):
        return float(np.sum(np.abs(m) ** 2 * np.arange(1, 5).reshape(2, 2)))

    right = lambda m: 2 * m * np.arange(1, 5).reshape(2, 2)  # noqa: E731
    assert gp.check(quartic, right, M).ok
    assert gp.check(quartic, lambda m: right(m).T, M).tensors["params"].diagnosis == "transposed"


def test_one_wrong_element_is_named_in_the_tensors_own_shape():
    def one_wrong(p):
        g = grad(p)
        g["z"][1, 2] += 0.5j  # only its imaginary part: still one element
        return g

    z = gp.check(loss, one_wrong, params()).tensors["z"]
    assert z.finding.indices == ((1, 2),) and (z.finding.count, z.finding.judged) == (1, Z.size)
    assert z.worst[0].index == (1, 2) and z.counts["fail"] == 1


def test_large_complex_tensors_under_the_directional_strategy():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(700) + 1j * rng.standard_normal(700)

    def modulus(z):
        return float(np.sum(np.abs(z) ** 2 + z.real))

    right = lambda z: 2 * z + 1  # noqa: E731
    assert gp.check(modulus, right, z).status == "pass"
    conjugated = gp.check(modulus, lambda z: np.conj(right(z)), z)
    assert conjugated.strategy == "directional" and conjugated.tensors["params"].diagnosis_kind == "conjugated"
    assert all(np.isfinite(e.numeric) for e in conjugated.tensors["params"].worst)  # both parts probed
    one = gp.check(modulus, lambda z: right(z) * np.where(np.arange(700) == 17, 2, 1), z).tensors["params"]
    assert one.finding.indices == ((17,),) and one.worst[0].index == (17,)


def test_json_holds_complex_values_as_real_and_imaginary_parts():
    jsonschema = pytest.importorskip("jsonschema")
    report = gp.check(loss, lambda p: {**grad(p), "z": np.conj(grad(p)["z"])}, params())
    data = report.to_dict(values=True)
    jsonschema.Draft202012Validator(gp.Report.json_schema()).validate(data)
    z = next(t for t in data["tensors"] if t["name"] == "z")
    worst = report.tensors["z"].worst[0]
    assert z["shape"] == [2, 3] and z["diagnosis_kind"] == "conjugated"
    assert z["worst"][0]["analytic"] == [worst.analytic.real, worst.analytic.imag]
    assert len(z["analytic"]) == Z.size and all(len(value) == 2 for value in z["analytic"])


def test_vectorized_losses_and_the_users_arrays():
    """A vectorized loss gets complex batches; a loss that writes into its arguments touches copies."""
    z = Z.copy()

    def batched(z):
        return np.sum(np.abs(z) ** 2, axis=(-2, -1))

    assert gp.check(batched, lambda z: 2 * z, z, vectorized=True).ok

    def scribbling(z):
        value = float(np.sum(np.abs(z) ** 2))
        z[...] = 0  # the loss's own copy
        return value

    assert gp.check(scribbling, lambda z: 2 * z, z).ok
    assert np.array_equal(z, Z)


def test_complex_functions_through_check_vjp():
    """f(z) = z |z|^2 is not holomorphic; its VJP (PyTorch's, Re <v, f>) is 2 |z|^2 v + z^2 conj(v)."""
    z = Z[0]
    f = lambda z: z * np.abs(z) ** 2  # noqa: E731
    report = gp.check_vjp(f, lambda z, v: 2 * np.abs(z) ** 2 * v + z**2 * np.conj(v), z)
    assert report.ok and "Re <v, f(x)>" in report.notes[0]
    wrong = gp.check_vjp(f, lambda z, v: 2 * np.abs(z) ** 2 * v + z**2 * v, z)  # conj(v) forgotten
    assert wrong.failing == ("x",)


# -- PyTorch -----------------------------------------------------------------------------------------


TORCH = {np.complex64: "complex64", np.complex128: "complex128"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_complex_inputs_and_outputs(dtype, torch_one_thread):
    torch = pytest.importorskip("torch")
    torch_dtype = getattr(torch, TORCH[dtype])
    z = torch.tensor(Z, dtype=torch_dtype, requires_grad=True)
    w = torch.tensor(W, dtype=torch.float32 if dtype == np.complex64 else torch.float64, requires_grad=True)
    real_loss = gp.torch.check(lambda z, w: ((z.abs() ** 2) @ w).sum() + (z**3).real.sum(), z, w)
    assert real_loss.ok and real_loss.tensors["z"].shape == (2, 3), real_loss
    complex_output = gp.torch.check(lambda z: torch.sin(z) * z.conj(), z)  # a complex, non-holomorphic output
    assert complex_output.ok and "Re <v, f(x)>" in " ".join(complex_output.notes), complex_output


def _torch_function(torch, backward):
    class Modulus(torch.autograd.Function):
        """|z|^2 + Re z summed, with the given backward."""

        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return (z.abs() ** 2 + z.real).sum()

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return backward(g, z)

    return Modulus.apply


def test_torch_a_backward_in_jax_convention_is_conjugated(torch_one_thread):
    torch = pytest.importorskip("torch")
    z = torch.tensor(Z, dtype=torch.complex128, requires_grad=True)
    right = _torch_function(torch, lambda g, z: g * (2 * z + 1))
    assert gp.torch.check(right, z).ok
    report = gp.torch.check(_torch_function(torch, lambda g, z: (g * (2 * z + 1)).conj()), z)
    tensor = report.tensors["input0"]
    assert tensor.diagnosis == "conjugated" and tensor.shape == (2, 3)
    for element in tensor.worst:  # shown in PyTorch's convention: the user's value, and the right one
        assert element.analytic == pytest.approx(np.conj(2 * Z[element.index] + 1), rel=1e-6)
        assert element.numeric == pytest.approx(2 * Z[element.index] + 1, rel=1e-4)
    doubled = gp.torch.check(_torch_function(torch, lambda g, z: 2 * g * (2 * z + 1)), z)
    assert doubled.tensors["input0"].diagnosis == "2.00x"


def test_torch_a_complex_output_with_a_wrong_backward_fails(torch_one_thread):
    torch = pytest.importorskip("torch")

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z * z

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * 2 * z  # PyTorch's VJP of a holomorphic f is g * conj(f'(z))

    z = torch.tensor(Z[0], dtype=torch.complex128, requires_grad=True)
    assert gp.torch.check(lambda z: z * z, z).ok
    assert gp.torch.check(Square.apply, z).failing == ("input0",)


def test_torch_complex_module_parameters(torch_one_thread):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2, dtype=torch.complex64)
    report = gp.torch.check_module(layer, lambda y: (y.abs() ** 2).sum(), torch.randn(4, 3, dtype=torch.complex64))
    assert report.ok and report.tensors["weight"].shape == (2, 3), report


# -- JAX ---------------------------------------------------------------------------------------------


def _jax_modulus(jax, rule):
    """|z|^2 + Re z summed, as a custom_vjp with the given rule for its gradient."""
    jnp = jax.numpy

    @jax.custom_vjp
    def modulus(z):
        return jnp.sum(jnp.abs(z) ** 2 + jnp.real(z))

    modulus.defvjp(lambda z: (modulus(z), z), lambda z, g: (g * rule(z),))
    return modulus


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_complex_arguments_and_outputs(dtype):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    with jax.enable_x64(dtype == np.complex128):
        z = jnp.asarray(Z, dtype=dtype)
        report = gp.jax.check(lambda z, w: jnp.sum(jnp.abs(z) ** 2 @ w) + jnp.sum(jnp.real(z**3)), z, jnp.asarray(W))
        assert report.ok and report.tensors["z"].shape == (2, 3), report
        outputs = gp.jax.check(lambda z: jnp.sin(z) * jnp.conj(z), z)  # a complex, non-holomorphic output
        assert outputs.ok and "Re <v, f(x)>" in " ".join(outputs.notes), outputs


def test_jax_a_rule_in_pytorch_convention_is_conjugated():
    jax = pytest.importorskip("jax")
    z = jax.numpy.asarray(Z, dtype=np.complex64)
    assert gp.jax.check(_jax_modulus(jax, lambda z: 2 * jax.numpy.conj(z) + 1), z).ok  # JAX's: dL/dRe - i dL/dIm
    report = gp.jax.check(_jax_modulus(jax, lambda z: 2 * z + 1), z)  # PyTorch's
    tensor = report.tensors["z"]
    assert tensor.diagnosis == "conjugated" and tensor.shape == (2, 3)
    # Shown in JAX's convention: the user's value, and the numerical one as JAX would give it.
    for element in tensor.worst:
        assert element.analytic == pytest.approx(2 * Z[element.index] + 1, rel=1e-6)
        assert element.numeric == pytest.approx(np.conj(2 * Z[element.index] + 1), rel=1e-4)
    doubled = gp.jax.check(_jax_modulus(jax, lambda z: 4 * jax.numpy.conj(z) + 2), z)
    assert doubled.tensors["z"].diagnosis == "2.00x"
