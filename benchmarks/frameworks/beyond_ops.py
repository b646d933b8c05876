"""Benchmark cases beyond first-order reverse mode: each rule correct and with a planted bug.

Four families, one per part of `beyond` (issue 14):

1. ``second_order_torch()`` / ``second_order_jax()``: custom ``torch.autograd.Function`` and
   ``jax.custom_vjp`` ops whose backward is right at order 1 in every variant. ``correct``: the
   backward is built from differentiable ops, so its own derivative (the double backward) is right;
   ``detached``: a factor of the backward is detached (``.detach()``, ``jax.lax.stop_gradient``),
   so the double backward misses its derivative; ``wrong factor``: the factor is
   ``s + (s - s.detach()) / 2``, the right value with 3/2 of its derivative.
2. ``forward_mode_torch()`` / ``forward_mode_jax()``: torch Functions with a ``jvp`` (the
   ``setup_context`` style, ``generate_vmap_rule = True``, so ``torch.func.jvp`` runs them) that are
   correct, have a wrong jvp (the backward right) or a wrong backward (the jvp right); and
   ``jax.custom_jvp`` ops, correct and with a wrong rule (JAX transposes that rule for reverse mode,
   so both modes are wrong there).
3. ``nearby_torch()`` / ``nearby_jax()``: bugs invisible at the given point: a weight gradient
   returned transposed where it is symmetric, and a backward that forgets a bias that is zero.
4. ``complex_torch()`` / ``complex_jax()``: complex inputs, correct, with the gradient
   conjugated, and with a wrong factor.

Every case says which inputs and which derivative ("backward", "double backward", "jvp") its bug
is in: ``Case.culprits`` and ``Case.derivative``, what a checker should blame. Inputs are
fresh, seeded leaves from ``make_inputs(dtype)`` (a real dtype: the complex cases take the complex
dtype of the same precision). JAX cases need x64 enabled by the caller to get float64 arrays.

This module is benchmark-only and imports torch and jax at the top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

__all__ = [
    "Case",
    "complex_jax",
    "complex_torch",
    "forward_mode_jax",
    "forward_mode_torch",
    "nearby_jax",
    "nearby_torch",
    "second_order_jax",
    "second_order_torch",
]


@dataclass(frozen=True)
class Case:
    """One function: ``variant`` "correct" or the bug planted, and where that bug is."""

    op: str
    variant: str
    fn: Callable[..., Any]
    make_inputs: Callable[[Any], tuple]  # a real dtype -> fresh seeded inputs
    inputs: tuple[str, ...]  # input names, in order
    culprits: tuple[str, ...] = ()  # inputs whose derivative is wrong; () for a correct case
    #: the derivatives the bug makes wrong, as a checker should name them: "backward" (order 1, reverse
    #: mode), "double backward" (order 2), "jvp" (forward mode); () for a correct case
    derivative: tuple[str, ...] = ()

    @property
    def correct(self) -> bool:
        return not self.culprits


# -- inputs ----------------------------------------------------------------------------------------


def _draw(seed: int, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def _torch_leaves(arrays: list[np.ndarray], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(a, dtype=torch.float64).to(dtype).requires_grad_() for a in arrays)


def _jax_args(arrays: list[np.ndarray], dtype: Any) -> tuple[jax.Array, ...]:
    return tuple(jnp.asarray(a, dtype=dtype) for a in arrays)


def _torch_inputs(seed: int, *shapes: tuple[int, ...]) -> Callable[[torch.dtype], tuple]:
    return lambda dtype: _torch_leaves(_draw(seed, *shapes), dtype)


def _jax_inputs(seed: int, *shapes: tuple[int, ...]) -> Callable[[Any], tuple]:
    return lambda dtype: _jax_args(_draw(seed, *shapes), dtype)


# -- 1. second order -------------------------------------------------------------------------------
# `plant` is applied to one factor of each backward: the three variants differ in nothing else.

VARIANTS_2 = ("correct", "detached", "wrong factor")


def _torch_plant(variant: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if variant == "detached":
        return torch.Tensor.detach  # the value right, no graph: no double backward
    if variant == "wrong factor":
        return lambda s: s + (s - s.detach()) / 2  # the value right, 3/2 of its derivative
    return lambda s: s


def _jax_plant(variant: str) -> Callable[[jax.Array], jax.Array]:
    if variant == "detached":
        return jax.lax.stop_gradient
    if variant == "wrong factor":
        return lambda s: s + (s - jax.lax.stop_gradient(s)) / 2
    return lambda s: s


def _torch_softplus2(plant):
    class Softplus(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.nn.functional.softplus(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * plant(torch.sigmoid(x))

    return Softplus.apply


def _torch_product2(plant):
    class Product(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x, y)
            return x * y

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            # The bug sits in x's gradient, but it is its derivative along y that goes wrong.
            return g * plant(y), g * x

    return Product.apply


def _torch_tanh_layer2(plant):
    class TanhLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W, b):
            y = torch.tanh(x @ W.T + b)
            ctx.save_for_backward(x, W, y)
            return y

        @staticmethod
        def backward(ctx, g):
            x, W, y = ctx.saved_tensors
            gz = g * plant(1 - y * y)  # tanh' depends on x, W and b: all three second derivatives
            return gz @ W, gz.T @ x, gz.sum(0)

    return TanhLayer.apply


def _torch_normalise2(plant):
    class Normalise(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x / x.norm(dim=-1, keepdim=True)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            # Recomputed from x: intermediates saved in forward carry no graph, and would make even
            # the "correct" double backward wrong.
            n = x.norm(dim=-1, keepdim=True)
            y = x / n
            return plant((g - y * (y * g).sum(-1, keepdim=True)) / n)  # the whole backward: "1.50x"

    return Normalise.apply


def second_order_torch() -> list[Case]:
    ops = [
        ("softplus", _torch_softplus2, ("x",), ("x",), _torch_inputs(11, (3, 4))),
        ("product x*y", _torch_product2, ("x", "y"), ("y",), _torch_inputs(12, (3, 4), (3, 4))),
        ("tanh layer", _torch_tanh_layer2, ("x", "W", "b"), ("x", "W", "b"), _torch_inputs(13, (4, 3), (2, 3), (2,))),
        ("normalise rows", _torch_normalise2, ("x",), ("x",), _torch_inputs(14, (3, 4))),
    ]
    return [
        Case(op, variant, build(_torch_plant(variant)), make, names,
             () if variant == "correct" else culprits, () if variant == "correct" else ("double backward",))
        for op, build, names, culprits, make in ops for variant in VARIANTS_2
    ]  # fmt: skip


def _jax_softplus2(plant):
    @jax.custom_vjp
    def softplus(x):
        return jax.nn.softplus(x)

    softplus.defvjp(lambda x: (jax.nn.softplus(x), x), lambda x, g: (g * plant(jax.nn.sigmoid(x)),))
    return softplus


def _jax_product2(plant):
    @jax.custom_vjp
    def product(x, y):
        return x * y

    product.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * plant(res[1]), g * res[0]))
    return product


def _jax_tanh_layer2(plant):
    def forward(x, W, b):
        y = jnp.tanh(x @ W.T + b)
        return y, (x, W, y)

    def backward(res, g):
        x, W, y = res
        gz = g * plant(1 - y * y)
        return gz @ W, gz.T @ x, gz.sum(0)

    tanh_layer = jax.custom_vjp(lambda x, W, b: forward(x, W, b)[0])
    tanh_layer.defvjp(forward, backward)
    return tanh_layer


def _jax_normalise2(plant):
    def forward(x):
        n = jnp.linalg.norm(x, axis=-1, keepdims=True)
        return x / n, (x / n, n)

    def backward(res, g):
        y, n = res
        return (plant((g - y * (y * g).sum(-1, keepdims=True)) / n),)

    normalise = jax.custom_vjp(lambda x: forward(x)[0])
    normalise.defvjp(forward, backward)
    return normalise


def second_order_jax() -> list[Case]:
    ops = [
        ("softplus", _jax_softplus2, ("x",), ("x",), _jax_inputs(21, (3, 4))),
        ("product x*y", _jax_product2, ("x", "y"), ("y",), _jax_inputs(22, (3, 4), (3, 4))),
        ("tanh layer", _jax_tanh_layer2, ("x", "W", "b"), ("x", "W", "b"), _jax_inputs(23, (4, 3), (2, 3), (2,))),
        ("normalise rows", _jax_normalise2, ("x",), ("x",), _jax_inputs(24, (3, 4))),
    ]
    return [
        Case(op, variant, build(_jax_plant(variant)), make, names,
             () if variant == "correct" else culprits, () if variant == "correct" else ("double backward",))
        for op, build, names, culprits, make in ops for variant in VARIANTS_2
    ]  # fmt: skip


# -- 2. forward-mode rules -------------------------------------------------------------------------


def _torch_function(name: str, forward, backward, jvp) -> Callable[..., torch.Tensor]:
    """A Function in the ``setup_context`` style (what ``torch.func.jvp`` and vmap need), its rules
    given as ``backward(*inputs, g)`` and ``jvp(*inputs, *tangents)``."""

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    members = {
        "generate_vmap_rule": True,
        "forward": staticmethod(forward),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(lambda ctx, g: backward(*ctx.saved_tensors, g)),
        "jvp": staticmethod(lambda ctx, *tangents: jvp(*ctx.saved_tensors, *tangents)),
    }
    return type(name, (torch.autograd.Function,), members).apply


def _unit_rows(x):
    n = x.norm(dim=-1, keepdim=True)
    return x / n, n


#: op -> (forward, right backward, right jvp, wrong backward, wrong jvp, inputs, culprits, make_inputs).
#: Each wrong rule is a slip a person makes when writing that rule by hand.
_FORWARD_TORCH = {
    "softplus": (
        lambda x: torch.nn.functional.softplus(x),
        lambda x, g: g * torch.sigmoid(x),
        lambda x, dx: dx * torch.sigmoid(x),
        lambda x, g: g * torch.sigmoid(-x),  # the sign inside the sigmoid
        lambda x, dx: dx * torch.sigmoid(x) * (1 - torch.sigmoid(x)),  # sigmoid's own derivative
        ("x",), ("x",), _torch_inputs(31, (3, 4)),
    ),
    "product x*y": (
        lambda x, y: x * y,
        lambda x, y, g: (g * y, g * x),
        lambda x, y, dx, dy: dx * y + x * dy,
        lambda x, y, g: (g * y, g * y),  # copy-paste: y's gradient uses y
        lambda x, y, dx, dy: dx * y + dy * y,  # copy-paste: y's tangent times y
        ("x", "y"), ("y",), _torch_inputs(32, (3, 4), (3, 4)),
    ),
    "matmul x@W": (
        lambda x, W: x @ W,
        lambda x, W, g: (g @ W.T, x.T @ g),
        lambda x, W, dx, dW: dx @ W + x @ dW,
        lambda x, W, g: (g @ W.T, x.T @ g / x.shape[0]),  # W's gradient averaged over the batch
        lambda x, W, dx, dW: dx @ W,  # the tangent of W forgotten
        ("x", "W"), ("W",), _torch_inputs(33, (4, 3), (3, 2)),
    ),
    "normalise rows": (
        lambda x: _unit_rows(x)[0],
        lambda x, g: (g - _unit_rows(x)[0] * (_unit_rows(x)[0] * g).sum(-1, keepdim=True)) / _unit_rows(x)[1],
        lambda x, dx: (dx - _unit_rows(x)[0] * (_unit_rows(x)[0] * dx).sum(-1, keepdim=True)) / _unit_rows(x)[1],
        lambda x, g: (g - _unit_rows(x)[0] * (_unit_rows(x)[0] * g).sum(-1, keepdim=True)) / _unit_rows(x)[1] ** 2,
        lambda x, dx: dx / _unit_rows(x)[1],  # the projection off y forgotten
        ("x",), ("x",), _torch_inputs(34, (3, 4)),
    ),
}

VARIANTS_FORWARD_TORCH = ("correct", "wrong jvp", "wrong backward")


def forward_mode_torch() -> list[Case]:
    cases = []
    for op, (forward, backward, jvp, bad_backward, bad_jvp, names, culprits, make) in _FORWARD_TORCH.items():
        name = op.split()[0].capitalize()
        cases += [
            Case(op, "correct", _torch_function(name, forward, backward, jvp), make, names),
            Case(op, "wrong jvp", _torch_function(name, forward, backward, bad_jvp), make, names, culprits, ("jvp",)),
            Case(op, "wrong backward", _torch_function(name, forward, bad_backward, jvp), make, names, culprits, ("backward",)),
        ]
    return cases


def _jax_custom_jvp(forward, rule) -> Callable[..., jax.Array]:
    """A ``jax.custom_jvp`` function whose rule is ``rule(*primals, *tangents)``."""
    fn = jax.custom_jvp(forward)
    fn.defjvp(lambda primals, tangents: (forward(*primals), rule(*primals, *tangents)))
    return fn


def _jax_unit_rows(x):
    n = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / n, n


#: op -> (forward, right rule, wrong rule, inputs, culprits, make_inputs).
_FORWARD_JAX = {
    "softplus": (
        jax.nn.softplus,
        lambda x, dx: dx * jax.nn.sigmoid(x),
        lambda x, dx: dx * jax.nn.sigmoid(x) * (1 - jax.nn.sigmoid(x)),
        ("x",), ("x",), _jax_inputs(41, (3, 4)),
    ),
    "product x*y": (
        lambda x, y: x * y,
        lambda x, y, dx, dy: dx * y + x * dy,
        lambda x, y, dx, dy: dx * y + dy * y,
        ("x", "y"), ("y",), _jax_inputs(42, (3, 4), (3, 4)),
    ),
    "matmul x@W": (
        lambda x, W: x @ W,
        lambda x, W, dx, dW: dx @ W + x @ dW,
        lambda x, W, dx, dW: dx @ W,
        ("x", "W"), ("W",), _jax_inputs(43, (4, 3), (3, 2)),
    ),
    "normalise rows": (
        lambda x: _jax_unit_rows(x)[0],
        lambda x, dx: (dx - _jax_unit_rows(x)[0] * (_jax_unit_rows(x)[0] * dx).sum(-1, keepdims=True))
        / _jax_unit_rows(x)[1],
        lambda x, dx: dx / _jax_unit_rows(x)[1],
        ("x",), ("x",), _jax_inputs(44, (3, 4)),
    ),
}


def forward_mode_jax() -> list[Case]:
    cases = []
    for op, (forward, rule, bad_rule, names, culprits, make) in _FORWARD_JAX.items():
        cases += [
            Case(op, "correct", _jax_custom_jvp(forward, rule), make, names),
            # The rule is forward mode; reverse mode is its transpose, wrong too: either is a right blame.
            Case(op, "wrong rule", _jax_custom_jvp(forward, bad_rule), make, names, culprits, ("jvp", "backward")),
        ]
    return cases


# -- 3. bugs that a special point hides ------------------------------------------------------------


def _orthogonal_and_symmetric(cast: Callable[[list[np.ndarray], Any], tuple]) -> Callable[[Any], tuple]:
    """x orthogonal (an orthogonal init) and W symmetric: the gradient of 1/2 ||x W||^2 in W,
    x^T x W = W, is symmetric there, so a transposed one is equal to it; anywhere nearby it is not."""
    rng = np.random.default_rng(51)
    x, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    A = rng.standard_normal((3, 3))
    return lambda dtype: cast([x, (A + A.T) / 2], dtype)


def _zero_bias(cast: Callable[[list[np.ndarray], Any], tuple]) -> Callable[[Any], tuple]:
    """A tanh layer's inputs with the bias at zero (its usual initial value)."""
    x, W = _draw(61, (4, 3), (2, 3))
    return lambda dtype: cast([x, W, np.zeros(2)], dtype)


def _torch_matmul_sym(transposed: bool):
    class MatMul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W):
            ctx.save_for_backward(x, W)
            return x @ W

        @staticmethod
        def backward(ctx, g):
            x, W = ctx.saved_tensors
            grad_W = x.T @ g
            return g @ W.T, grad_W.T if transposed else grad_W  # the bug: shapes agree when W is square

    return lambda x, W: 0.5 * (MatMul.apply(x, W) ** 2).sum()


def _torch_tanh_bias(forgets_bias: bool):
    class TanhLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W, b):
            ctx.save_for_backward(x, W, b)  # saves the inputs, recomputes tanh in backward
            return torch.tanh(x @ W.T + b)

        @staticmethod
        def backward(ctx, g):
            x, W, b = ctx.saved_tensors
            y = torch.tanh(x @ W.T) if forgets_bias else torch.tanh(x @ W.T + b)  # the bug: b left out
            gz = g * (1 - y * y)
            return gz @ W, gz.T @ x, gz.sum(0)

    return TanhLayer.apply


def nearby_torch() -> list[Case]:
    sym = _orthogonal_and_symmetric(_torch_leaves)
    bias = _zero_bias(_torch_leaves)
    return [
        Case("sum((x@W)^2)/2, x orthogonal, W symmetric", "correct", _torch_matmul_sym(False), sym, ("x", "W")),
        Case("sum((x@W)^2)/2, x orthogonal, W symmetric", "grad W transposed", _torch_matmul_sym(True), sym,
             ("x", "W"), ("W",), ("backward",)),
        Case("tanh layer, zero bias", "correct", _torch_tanh_bias(False), bias, ("x", "W", "b")),
        Case("tanh layer, zero bias", "backward forgets b", _torch_tanh_bias(True), bias, ("x", "W", "b"),
             ("x", "W", "b"), ("backward",)),
    ]  # fmt: skip


def _jax_matmul_sym(transposed: bool):
    @jax.custom_vjp
    def matmul(x, W):
        return x @ W

    def backward(res, g):
        x, W = res
        grad_W = x.T @ g
        return g @ W.T, grad_W.T if transposed else grad_W

    matmul.defvjp(lambda x, W: (x @ W, (x, W)), backward)
    return lambda x, W: 0.5 * (matmul(x, W) ** 2).sum()


def _jax_tanh_bias(forgets_bias: bool):
    @jax.custom_vjp
    def tanh_layer(x, W, b):
        return jnp.tanh(x @ W.T + b)

    def backward(res, g):
        x, W, b = res
        y = jnp.tanh(x @ W.T) if forgets_bias else jnp.tanh(x @ W.T + b)
        gz = g * (1 - y * y)
        return gz @ W, gz.T @ x, gz.sum(0)

    tanh_layer.defvjp(lambda x, W, b: (jnp.tanh(x @ W.T + b), (x, W, b)), backward)
    return tanh_layer


def nearby_jax() -> list[Case]:
    sym = _orthogonal_and_symmetric(_jax_args)
    bias = _zero_bias(_jax_args)
    return [
        Case("sum((x@W)^2)/2, x orthogonal, W symmetric", "correct", _jax_matmul_sym(False), sym, ("x", "W")),
        Case("sum((x@W)^2)/2, x orthogonal, W symmetric", "grad W transposed", _jax_matmul_sym(True), sym,
             ("x", "W"), ("W",), ("backward",)),
        Case("tanh layer, zero bias", "correct", _jax_tanh_bias(False), bias, ("x", "W", "b")),
        Case("tanh layer, zero bias", "backward forgets b", _jax_tanh_bias(True), bias, ("x", "W", "b"),
             ("x", "W", "b"), ("backward",)),
    ]  # fmt: skip


# -- 4. complex inputs -----------------------------------------------------------------------------
# torch's convention: the backward of a holomorphic f returns g * conj(f'(z)); for a real loss of
# z the gradient is 2 dL/d(conj z) (|z|^2 -> 2 z). JAX's VJP is the transpose without a conjugate:
# g * f'(z) for a holomorphic f, and |z|^2 -> 2 conj(z) as its gradient.

VARIANTS_COMPLEX = ("correct", "conjugated", "wrong factor")


def _complex_draw(seed: int, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) + 1j * rng.standard_normal(shape) for shape in shapes]


_COMPLEX_TORCH = {torch.float64: torch.complex128, torch.float32: torch.complex64}


def _torch_complex_inputs(seed: int, *shapes: tuple[int, ...]) -> Callable[[torch.dtype], tuple]:
    def make(dtype):
        arrays = _complex_draw(seed, *shapes)
        return tuple(torch.tensor(a).to(_COMPLEX_TORCH[dtype]).requires_grad_() for a in arrays)

    return make


def _torch_complex_function(forward, backward) -> Callable[..., torch.Tensor]:
    class Complex(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            ctx.save_for_backward(*inputs)
            return forward(*inputs)

        @staticmethod
        def backward(ctx, g):
            return backward(*ctx.saved_tensors, g)

    return Complex.apply


#: op -> (forward, {variant: backward}, inputs, culprits, make_inputs).
_COMPLEX_TORCH_OPS = {
    "square z*z": (
        lambda z: z * z,
        {
            "correct": lambda z, g: g * (2 * z).conj(),
            "conjugated": lambda z, g: g * 2 * z,
            "wrong factor": lambda z, g: g * z.conj(),
        },
        ("z",), ("z",), _torch_complex_inputs(71, (5,)),
    ),
    "abs(z)^2": (
        lambda z: (z * z.conj()).real,
        {
            "correct": lambda z, g: 2 * g * z,
            "conjugated": lambda z, g: 2 * g * z.conj(),
            "wrong factor": lambda z, g: g * z,  # d|z|^2/d(conj z) without the 2 of torch's convention
        },
        ("z",), ("z",), _torch_complex_inputs(72, (5,)),
    ),
    "product a*b": (
        lambda a, b: a * b,
        {
            "correct": lambda a, b, g: (g * b.conj(), g * a.conj()),
            "conjugated": lambda a, b, g: (g * b.conj(), g * a),
            "wrong factor": lambda a, b, g: (g * b.conj(), 2 * g * a.conj()),
        },
        ("a", "b"), ("b",), _torch_complex_inputs(73, (5,), (5,)),
    ),
}


def complex_torch() -> list[Case]:
    return [
        Case(op, variant, _torch_complex_function(forward, backward), make, names,
             () if variant == "correct" else culprits, () if variant == "correct" else ("backward",))
        for op, (forward, backwards, names, culprits, make) in _COMPLEX_TORCH_OPS.items()
        for variant, backward in backwards.items()
    ]  # fmt: skip


_COMPLEX_JAX = {"float64": jnp.complex128, "float32": jnp.complex64}


def _jax_complex_inputs(seed: int, *shapes: tuple[int, ...]) -> Callable[[Any], tuple]:
    return lambda dtype: tuple(
        jnp.asarray(a, dtype=_COMPLEX_JAX[jnp.dtype(dtype).name]) for a in _complex_draw(seed, *shapes)
    )


def _jax_complex_vjp(forward, backward) -> Callable[..., jax.Array]:
    fn = jax.custom_vjp(forward)
    fn.defvjp(lambda *inputs: (forward(*inputs), inputs), lambda inputs, g: backward(*inputs, g))
    return fn


_COMPLEX_JAX_OPS = {
    "square z*z": (
        lambda z: z * z,
        {
            "correct": lambda z, g: (g * 2 * z,),
            "conjugated": lambda z, g: (g * jnp.conj(2 * z),),
            "wrong factor": lambda z, g: (g * z,),
        },
        ("z",), ("z",), _jax_complex_inputs(81, (5,)),
    ),
    "abs(z)^2": (
        lambda z: jnp.real(z * jnp.conj(z)),
        {
            "correct": lambda z, g: (2 * g * jnp.conj(z),),
            "conjugated": lambda z, g: (2 * g * z,),
            "wrong factor": lambda z, g: (g * jnp.conj(z),),
        },
        ("z",), ("z",), _jax_complex_inputs(82, (5,)),
    ),
    "product a*b": (
        lambda a, b: a * b,
        {
            "correct": lambda a, b, g: (g * b, g * a),
            "conjugated": lambda a, b, g: (g * b, g * jnp.conj(a)),
            "wrong factor": lambda a, b, g: (g * b, 2 * g * a),
        },
        ("a", "b"), ("b",), _jax_complex_inputs(83, (5,), (5,)),
    ),
}


def complex_jax() -> list[Case]:
    return [
        Case(op, variant, _jax_complex_vjp(forward, backward), make, names,
             () if variant == "correct" else culprits, () if variant == "correct" else ("backward",))
        for op, (forward, backwards, names, culprits, make) in _COMPLEX_JAX_OPS.items()
        for variant, backward in backwards.items()
    ]  # fmt: skip
