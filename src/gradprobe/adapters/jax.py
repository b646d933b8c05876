"""`gradprobe.jax`: check JAX gradients (custom_vjp, custom_jvp, pure_callback) with error bars.

The adapter only converts. Every floating-point leaf of the checked arguments' pytrees becomes a
numpy parameter of its own dtype (float32 unless ``jax_enable_x64`` is on); each loss evaluation
puts the values back on the leaf's device, runs the user's function (jit-compiled when it can
be) and contracts a non-scalar output with a fixed random cotangent. The analytic side is
``jax.vjp`` of the same function with that cotangent. The contraction runs in float64: on the
device when x64 is enabled, otherwise on the host, since float32 sums would add their own
rounding to the loss.

Where batches pay (`strategies._cost.batches_pay`: few parameters, or elements probed one by
one), evaluations are batched with `jax.vmap` (in batches of a fixed size, so XLA compiles one
batched program) when the function allows it and gives, bit for bit, the values of one call at a
time; otherwise, and for the few points at a time of a directional check of many parameters, they
run one at a time.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import replace
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import InvalidArgument, InvalidValue, UserFunctionError
from ..estimate._calling import call_user as _call
from ..estimate._oracle import Oracle
from ..report._types import Report
from ..strategies._assert import assert_passes
from ..strategies._cost import batches_pay
from ._derivatives import FORWARD_NOTE, grad_output_names, ORDER_STREAM, refuse_own_reference, require_derivative, shown
from ..params._complex import conjugate_values
from ._complex import refuse_complex_derivatives
from ._vjp import call_line, check_contracted, cotangent_seed, describe_outputs, random_cotangents, refuse_process_pools, require_finite_gradient, require_known_options, without_held

__all__ = ["assert_gradients", "check"]

OracleName = Literal["differences", "forward"]

# JAX's bfloat16 is ml_dtypes' (installed with JAX), the core's dtype for bfloat16 leaves.
_CHECKED_DTYPES = {np.dtype(jnp.bfloat16), np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
                   np.dtype(np.complex64), np.dtype(np.complex128)}  # fmt: skip
# Where JAX's own source lives: custom_jvp rules defined there are not the user's.
_JAX_SOURCES = {str(Path(jax.__file__).parent), str(Path(jax.__file__).resolve().parent)}
# Tangent batches are dense: keep one vmap call to about this many numbers.
_BATCH_NUMBERS = 2**24
# Batched calls always hold this many points (the last batch padded), so that XLA compiles one
# batched program instead of one per batch size.
_ROWS = 32


def _x64() -> bool:
    # The attribute follows `jax.enable_x64(...)` contexts too; `read` is the older spelling.
    try:
        return bool(jax.config.jax_enable_x64)
    except AttributeError:
        return bool(jax.config.read("jax_enable_x64"))


def _key_name(key: Any) -> str:
    for attribute in ("key", "idx", "name"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _arg_names(fn: Callable[..., Any], count: int) -> list[str]:
    fallback = [f"arg{i}" for i in range(count)]
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fallback
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[:count] if len(positional) >= count else fallback


def _is_float(leaf: Any) -> bool:
    """Whether `leaf` is floating-point or complex: differentiable, checked."""
    return isinstance(leaf, (float, complex, np.inexact)) or (
        hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)
    )


def _wide(dtype: Any) -> Any:
    """The float64 reference's dtype for values of `dtype`: complex128 for complex ones, else float64."""
    return np.complex128 if jnp.issubdtype(dtype, jnp.complexfloating) else np.float64




def _on_host(gradient: jax.Array) -> np.ndarray:
    """A gradient as numpy; bfloat16 (not a numpy number type) as float32, which holds it exactly."""
    return np.asarray(gradient, dtype=np.float32 if gradient.dtype == jnp.bfloat16 else gradient.dtype)


def _jitted(fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[..., Any] | None:
    """``jax.jit`` of `fn` with non-array arguments static, traced afresh for each check: JAX keys
    its compiled code on the function object, and a `custom_vjp` whose rule was replaced since
    (``defvjp`` again), or a global its rule reads, would otherwise be checked as it was before."""

    def is_array_tree(arg: Any) -> bool:
        return all(hasattr(leaf, "dtype") or isinstance(leaf, float) for leaf in jax.tree_util.tree_leaves(arg))

    static = tuple(i for i, arg in enumerate(args) if not is_array_tree(arg))
    try:
        for i in static:
            hash(args[i])
        return jax.jit(lambda *arguments: fn(*arguments), static_argnums=static)
    except Exception:
        return None


class _Function:
    """``fn(*args)`` seen as a function of the float leaves of the checked arguments."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], argnums: Sequence[int], seed: int) -> None:
        self.fn = fn
        self.args = args
        self.slot_numbers = list(argnums)
        names = _arg_names(fn, len(args))
        self.treedefs = {}
        self.slots: list[tuple[int, int]] = []  # (argument number, leaf position) of each checked leaf
        self.names: list[str] = []
        self.leaves: list[jax.Array] = []
        self.skipped: list[str] = []
        self.flat_args: dict[int, list[Any]] = {}
        self.held: dict[str, np.ndarray] = {}  # per leaf name, the elements held at their NaN/inf values
        for number in argnums:
            with_paths, treedef = jax.tree_util.tree_flatten_with_path(args[number])
            self.treedefs[number] = treedef
            self.flat_args[number] = [leaf for _, leaf in with_paths]
            for position, (path, leaf) in enumerate(with_paths):
                name = ".".join([names[number], *(_key_name(k) for k in path)])
                if not _is_float(leaf):
                    self.skipped.append(f"`{name}` ({f'dtype {leaf.dtype}' if hasattr(leaf, 'dtype') else type(leaf).__name__})")
                    continue
                array = jnp.asarray(leaf)
                if array.dtype not in _CHECKED_DTYPES:
                    raise InvalidArgument(
                        f"`args` leaf `{name}` has dtype {array.dtype}; gradprobe checks bfloat16, float16, float32, "
                        "float64, complex64 and complex128.",
                        argument="args",
                    )
                if array.size == 0:
                    raise InvalidValue(
                        f"`args` leaf `{name}` is empty (shape {array.shape}); there is nothing to check.",
                        argument="args",
                    )
                # Elements not finite at the point (an attention mask's -inf) have no derivative:
                # they keep their value at every point the loss is evaluated at, and are not checked.
                finite = np.isfinite(np.asarray(array, dtype=_wide(array.dtype)))
                if not finite.any():
                    raise InvalidValue(
                        f"`args` leaf `{name}` holds only NaN or inf; there is nothing to check there. Leave it "
                        "out with `argnums`, or close over it.",
                        argument="args",
                    )
                if not finite.all():
                    self.held[name] = ~finite
                self.slots.append((number, position))
                self.names.append(name)
                self.leaves.append(array)
        if not self.leaves:
            raise InvalidValue(
                "no floating-point array among the checked `args` of `fn`; pass float arrays (or pick the "
                "arguments with `argnums`).",
                argument="args",
            )
        self.seed = seed
        self.jit = _jitted(fn, args)
        start = self.outputs(self.leaves)
        if not start:
            raise InvalidArgument("`fn` returned no floating-point array; return the output(s) to check.", argument="fn")
        self.shapes = [tuple(y.shape) for y in start]
        self.out_dtypes = [y.dtype for y in start]
        # Rounded to each output's dtype, so that the contraction and the VJP use the very same v.
        self.complex_outputs = [jnp.issubdtype(d, jnp.complexfloating) for d in self.out_dtypes]
        rounded = [np.asarray(v, dtype=d) for v, d in zip(random_cotangents(self.shapes, seed, self.complex_outputs), self.out_dtypes)]
        self.cotangents = [jnp.asarray(v) for v in rounded]
        self.cotangents64 = [v.astype(_wide(v.dtype)) for v in rounded]
        self.batched_jvp: bool | None = None

    # -- building calls ------------------------------------------------------------------------------

    def _args(self, leaves: Sequence[Any]) -> tuple[Any, ...]:
        flat = {number: list(values) for number, values in self.flat_args.items()}
        for (number, position), leaf in zip(self.slots, leaves):
            flat[number][position] = leaf
        args = list(self.args)
        for number, treedef in self.treedefs.items():
            args[number] = jax.tree_util.tree_unflatten(treedef, flat[number])
        return tuple(args)

    def _outputs(self, leaves: Sequence[Any]) -> list[Any]:
        args = self._args(leaves)
        if self.jit is not None:
            try:
                output = self.jit(*args)
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception:
                # Raised by the function itself (an op refusing float64) where the eager call raises too:
                # the jit stays, and the gradient under test is computed by the same program each time.
                output = self.fn(*args)
                self.jit = None  # the function runs but does not trace (Python control flow on values): eagerly from now on
        else:
            output = self.fn(*args)
        return [y for y in jax.tree_util.tree_leaves(output) if _is_float(y)]

    def outputs(self, leaves: Sequence[Any]) -> list[Any]:
        return _call(self._outputs, "fn", leaves)

    def vjp(self, leaves: Sequence[Any]) -> list[Any]:
        def pullback() -> list[Any]:
            outputs, back = jax.vjp(self._outputs, list(leaves))
            # Under the float64 reference the outputs are float64: the same v, in their dtype. JAX's VJP of
            # Re <v, y> takes conj(v) for a complex output (`_vjp`).
            return back([jnp.conj(v).astype(y.dtype) for v, y in zip(self.cotangents, outputs)])[0]

        return _call(pullback, "fn", where="in its VJP")

    def differentiated(self, seed: int) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``fn`` one order up, ``(args, v) -> <w, gradient of <v, fn(args)>>`` over the checked
        leaves for a fixed random `w`, and its arguments: fn's, then the cotangents `v` (named
        ``grad_output``). Its gradient is the derivative of fn's VJP with respect to the checked
        leaves and to `v`, as gradgradcheck takes it: a VJP that stops the gradient of its
        incoming cotangent is wrong there."""
        weights = [np.asarray(w) for w in random_cotangents([tuple(leaf.shape) for leaf in self.leaves], seed)]
        count = len(self.args)
        names = _arg_names(self.fn, count)
        outputs = grad_output_names(len(self.cotangents), set(names))

        def contracted(leaves: list[Any], cotangents: tuple[Any, ...]) -> Any:
            # The unchecked arguments are fn's own; the checked leaves are the ones `higher` gets.
            return sum(jnp.vdot(v.astype(y.dtype), y) for v, y in zip(cotangents, self._outputs(leaves)))

        def higher(*arguments: Any) -> Any:
            args, cotangents = arguments[:count], arguments[count:]
            leaves = [jax.tree_util.tree_leaves(args[number])[position] for number, position in self.slots]
            grads = jax.grad(contracted)(leaves, cotangents)
            return sum(jnp.vdot(jnp.asarray(w, dtype=g.dtype), g) for w, g in zip(weights, grads))

        # Named like fn's arguments, then the cotangents (the report's tensor names come from here).
        higher.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in [*names, *outputs]]
        )
        return higher, (*self.args, *self.cotangents)

    def _device_leaves(self, values: dict[str, np.ndarray]) -> list[jax.Array]:
        return [
            jax.device_put(self._hold(name, np.asarray(values[name], dtype=self._dtype(values[name], leaf))), leaf.sharding)
            for name, leaf in zip(self.names, self.leaves)
        ]

    def _hold(self, name: str, values: np.ndarray) -> np.ndarray:
        """`values` of leaf `name` (one point, or a batch along a leading axis) with its held
        elements at their values at the starting point."""
        mask = self.held.get(name)
        if mask is None:
            return values
        start = np.asarray(self.leaves[self.names.index(name)]).astype(values.dtype)
        return np.where(mask, start, values)

    @staticmethod
    def _dtype(values: np.ndarray, leaf: jax.Array) -> Any:
        """The leaf's own dtype, or float64 (complex128) when the core sends such values (the float64 reference)."""
        dtype = np.asarray(values).dtype
        return dtype if dtype in (np.float64, np.complex128) else leaf.dtype

    def _precision(self, values: dict[str, np.ndarray]) -> Any:
        """The float64 reference runs with JAX's x64 mode on for the call (and only for it): the
        checked leaves in float64; the other arguments and closed-over arrays keep their dtypes and
        promote as JAX promotes them."""
        widened = any(
            np.asarray(values[name]).dtype == _wide(leaf.dtype) and leaf.dtype != _wide(leaf.dtype)
            for name, leaf in zip(self.names, self.leaves)
        )
        return jax.enable_x64(True) if widened and not _x64() else contextlib.nullcontext()

    def _contract(self, outputs: Sequence[Any]) -> float:
        if [tuple(y.shape) for y in outputs] != self.shapes:
            raise InvalidArgument(
                f"`fn` returned outputs of shapes {[tuple(y.shape) for y in outputs]} here but {self.shapes} at "
                "the starting point; the output structure must not depend on the arguments' values.",
                argument="fn",
            )
        # vdot conjugates v: Re <v, y> for a complex output
        if _x64():
            return float(sum(jnp.real(jnp.vdot(v, y.astype(v.dtype))) for v, y in zip(self.cotangents64, outputs)))
        return float(sum(np.real(np.vdot(v, np.asarray(y, dtype=v.dtype))) for v, y in zip(self.cotangents64, outputs)))

    # -- what the core calls ---------------------------------------------------------------------------

    def params(self) -> dict[str, np.ndarray]:
        # Held elements are 0 there: the core sees finite numbers, the loss never sees them.
        return {
            name: np.where(self.held[name], 0, np.asarray(leaf)).astype(np.asarray(leaf).dtype) if name in self.held
            else np.asarray(leaf)
            for name, leaf in zip(self.names, self.leaves)
        }  # fmt: skip

    def loss(self, values: dict[str, np.ndarray]) -> float:
        with self._precision(values):
            return self._contract(self.outputs(self._device_leaves(values)))

    def _batched_outputs(self, leaves: Sequence[Any]) -> list[Any]:
        return jax.vmap(self._outputs)(list(leaves))

    def vmap_consistent(self, reference: bool = True) -> bool:
        """Whether `jax.vmap` evaluates the function, and bit for bit as one call at a time.

        Batched products may round differently from single ones and differently at each
        position in the batch; such a function is evaluated one point at a time, so that
        identical points always give identical values (anything else reads as non-determinism).
        """
        widest = max(int(np.prod(s, dtype=np.int64)) for s in [*self.shapes, *(leaf.shape for leaf in self.leaves)])
        self.rows = max(1, min(_ROWS, _BATCH_NUMBERS // 4 // max(widest, 1)))
        if not self._batch_matches(widened=False):
            return False
        # The float64 reference evaluates in float64: batched calls must match single ones there too.
        lower = any(leaf.dtype != np.float64 for leaf in self.leaves)
        if reference and lower and not _x64():
            with jax.enable_x64(True):
                return self._batch_matches(widened=True)
        return True

    def _batch_matches(self, widened: bool) -> bool:
        same_rows = sorted({0, self.rows // 2, self.rows - 1})
        try:
            start = [jnp.asarray(np.asarray(leaf), dtype=_wide(leaf.dtype)) if widened else leaf for leaf in self.leaves]
            single = self._contract(self._outputs(start))
            rng = np.random.default_rng(0)
            batch = []
            for leaf, x in zip(self.leaves, start):
                x = np.asarray(x)
                rows = x[None] * (1 + 1e-3 * rng.random((self.rows, *x.shape))).astype(x.dtype)
                rows[same_rows] = x
                batch.append(jax.device_put(rows, leaf.sharding))
            values = self._contract_batch(self._batched_outputs(batch))
            return all(values[i] == single for i in same_rows)
        except Exception:  # not vmap-able (pure_callback without a batching rule, Python control flow...)
            return False

    def batched_loss(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """The loss at a batch of parameter sets (a leading axis on every value), through jax.vmap."""
        with self._precision(values):
            return self._batched_loss(values)

    def _batched_loss(self, values: dict[str, np.ndarray]) -> np.ndarray:
        arrays = [
            self._hold(name, np.asarray(values[name], dtype=self._dtype(values[name], leaf)))
            for name, leaf in zip(self.names, self.leaves)
        ]
        count = arrays[0].shape[0]
        results: list[float] = []
        for start in range(0, count, self.rows):
            part = [a[start : start + self.rows] for a in arrays]
            filled = len(part[0])
            if filled < self.rows:  # pad with copies of the last point; their values are dropped
                part = [np.concatenate([a, np.repeat(a[-1:], self.rows - filled, axis=0)]) for a in part]
            leaves = [jax.device_put(a, leaf.sharding) for a, leaf in zip(part, self.leaves)]
            results.extend(_call(lambda: self._contract_batch(self._batched_outputs(leaves)), "fn")[:filled])
        return np.array(results)

    def grad(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._precision(values):
            grads = self.vjp(self._device_leaves(values))
            # The core reads a complex gradient in PyTorch's convention, the conjugate of JAX's (`params._complex`).
            gradient = {name: np.conj(_on_host(g)) if jnp.iscomplexobj(g) else _on_host(g) for name, g in zip(self.names, grads)}
        for name, mask in self.held.items():  # not checked: the loss never moves them
            gradient[name] = np.where(mask, 0, gradient[name]).astype(gradient[name].dtype)
        require_finite_gradient(gradient, "fn", "jax.vjp")
        return gradient

    def reference_dtypes(self) -> list[str]:
        """The floating-point dtypes below float64 that the function computes in from float64
        leaves (a cast such as ``.astype(jnp.float32)``): read off its jaxpr, following only what
        depends on the checked leaves ([] where it cannot be traced)."""
        with jax.enable_x64(True):
            try:
                wide = [np.complex128 if jnp.iscomplexobj(leaf) else np.float64 for leaf in self.leaves]
                closed = jax.make_jaxpr(self._outputs)([jnp.asarray(np.asarray(leaf, dtype=d)) for leaf, d in zip(self.leaves, wide)])
            except Exception:  # not traceable (Python control flow on values): nothing to say
                return []
        found: set[str] = set()
        _lower_floats(closed.jaxpr, set(closed.jaxpr.invars), found)
        return sorted(found)

    # -- oracle="forward" --------------------------------------------------------------------------------

    def _tangent_outputs(self, tangents: Sequence[Any], primals: Sequence[Any] | None = None) -> list[Any]:
        return jax.jvp(self._outputs, (list(self.leaves if primals is None else primals),), (list(tangents),))[1]

    @staticmethod
    def _one_hot(primals: Sequence[Any], indices: np.ndarray) -> list[np.ndarray]:
        """Unit tangents in the primals' own dtypes (float64 ones in the float64 run of float32 leaves)."""
        tangents, offset = [], 0
        for leaf in primals:
            size = int(np.prod(leaf.shape, dtype=np.int64))
            batch = np.zeros((len(indices), size), dtype=leaf.dtype)
            rows = np.flatnonzero((indices >= offset) & (indices < offset + size))
            batch[rows, indices[rows] - offset] = 1
            tangents.append(batch.reshape(len(indices), *leaf.shape))
            offset += size
        return tangents

    def oracle(self) -> Oracle:
        return Oracle(lambda indices: self.directional(self.leaves, indices), size=self._size())

    def _size(self) -> int:
        return sum(int(np.prod(leaf.shape, dtype=np.int64)) for leaf in self.leaves)

    def directional(self, primals: Sequence[Any], indices: np.ndarray) -> np.ndarray:
        """Forward-mode derivatives of the contraction at `primals` along the unit vectors of the
        flat `indices`: ``jax.jvp`` batched with vmap where it works, else one at a time."""
        out_size = sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes)
        per_batch = max(1, _BATCH_NUMBERS // max(out_size + self._size(), 1))
        tangents = self._one_hot(primals, indices)
        if self.batched_jvp is not False:
            try:
                batched = jax.vmap(lambda tangent: self._tangent_outputs(tangent, primals))
                values = []
                for start in range(0, len(indices), per_batch):
                    outputs = batched([jnp.asarray(t[start : start + per_batch]) for t in tangents])
                    values.extend(self._contract_batch(outputs))
                self.batched_jvp = True
                return np.array(values)
            except Exception:
                if self.batched_jvp:
                    raise
                self.batched_jvp = False  # e.g. pure_callback without a vmap rule: loop from now on
        return np.array([
            self._contract(_call(self._tangent_outputs, "fn", [t[k] for t in tangents], primals))
            for k in range(len(indices))
        ])  # fmt: skip

    def forward_grad(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gradient under test assembled from forward mode (``jax.jvp``, through a
        ``custom_jvp``'s rule): element i is the JVP along the i-th unit vector, contracted like the loss."""
        with self._precision(values):
            primals = self._device_leaves(values)
            flat = _call(self.directional, "fn", primals, np.arange(self._size()), where="in its JVP")
        gradient, start = {}, 0
        for name, leaf in zip(self.names, self.leaves):
            size = int(np.prod(leaf.shape, dtype=np.int64))
            dtype = np.float64 if np.asarray(values[name]).dtype == np.float64 else _on_host(leaf).dtype
            gradient[name] = flat[start : start + size].reshape(leaf.shape).astype(dtype)
            start += size
        for name, mask in self.held.items():  # not checked: the loss never moves them
            gradient[name] = np.where(mask, 0, gradient[name]).astype(gradient[name].dtype)
        require_finite_gradient(gradient, "fn", "jax.jvp")
        return gradient

    def custom_jvp_rules(self) -> list[str]:
        """Names of the ``jax.custom_jvp`` functions the computation calls: their rule gives both
        forward mode and (transposed) the VJP, so it cannot be its own reference."""
        try:
            closed = jax.make_jaxpr(self._outputs)(self.leaves)
        except Exception:  # not traceable: nothing found
            return []
        found: set[str] = set()
        stack = [closed.jaxpr]
        while stack:
            jaxpr = stack.pop()
            for equation in jaxpr.eqns:
                if equation.primitive.name.startswith("custom_jvp_call"):
                    call = equation.params.get("call_jaxpr")
                    function, rule = _source(getattr(call, "jaxpr", call)), _source(equation.params.get("jvp_jaxpr_fun"))
                    # JAX's own rules (jax.nn.relu, jnp.logaddexp) are JAX's, not the code under test; a
                    # user's rule may wrap a JAX function, or a user's function use JAX's `defjvps`.
                    if not all(any(d in source for d in _JAX_SOURCES) for source in (function, rule)):
                        found.add(function.split(" at ")[0] or "a jax.custom_jvp")
                stack.extend(_nested_jaxprs(equation.params.values()))
        return sorted(found)

    def _contract_batch(self, outputs: Sequence[Any]) -> list[float]:
        host = [np.asarray(y, dtype=_wide(y.dtype)) for y in outputs]
        count = host[0].shape[0]
        return [float(sum(np.real(np.vdot(v, y[k])) for v, y in zip(self.cotangents64, host))) for k in range(count)]

    def require_forward_mode(self, argument: str = "oracle", value: str = "forward") -> None:
        """Fail early, with the fix, when the function has no forward-mode derivative (which
        `argument`, oracle='forward' or mode='forward', needs)."""
        try:
            self._tangent_outputs([jnp.zeros_like(leaf) for leaf in self.leaves])
        except Exception as error:
            fallback = "the default oracle='differences'" if argument == "oracle" else "mode='reverse'"
            raise InvalidArgument(
                f"`{argument}`={value!r} needs forward-mode AD, but `fn` does not support it ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}). A jax.custom_vjp function has no JVP: use "
                f"jax.custom_jvp, or {fallback}.",
                argument=argument,
            ) from error


def _source(traced: Any) -> str:
    """``"name at file:line"`` of a traced function (its debug info), or ""."""
    return str(getattr(getattr(traced, "debug_info", None), "func_src_info", None) or "")


def _lower_floats(jaxpr: Any, tainted: set[Any], found: set[str]) -> None:
    """Add to `found` the float dtypes below float64 of every value of `jaxpr` computed from the
    `tainted` variables (a nested jaxpr of such an equation is followed with all its inputs tainted)."""
    for eqn in jaxpr.eqns:
        if not any(v in tainted for v in eqn.invars if hasattr(v, "aval") and not hasattr(v, "val")):
            continue
        tainted.update(eqn.outvars)
        for v in eqn.outvars:
            dtype = getattr(v.aval, "dtype", None)
            if dtype is not None and jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 64:
                found.add(str(dtype))
        for inner in _nested_jaxprs(eqn.params.values()):
            _lower_floats(inner, set(inner.invars), found)


def _nested_jaxprs(values: Any) -> list[Any]:
    """The jaxprs among an equation's parameters (pjit's, scan's, cond's branches...)."""
    found = []
    for value in values:
        if isinstance(value, (tuple, list)):
            found.extend(_nested_jaxprs(value))
        elif hasattr(value, "eqns"):
            found.append(value)
        elif hasattr(getattr(value, "jaxpr", None), "eqns"):
            found.append(value.jaxpr)
    return found


def check(
    fn: Callable[..., Any],
    *args: Any,
    argnums: int | Sequence[int] | None = None,
    oracle: OracleName = "differences",
    **options: Any,
) -> Report:
    """Check JAX's reverse-mode gradient of ``fn(*args)`` against error-barred numerical derivatives.

    Every floating-point leaf of the checked arguments (arrays or pytrees of them) is a tensor of
    the report, named by argument and pytree path (``params.layers.0.w``). Integer leaves are
    passed through and listed in a note. A non-scalar output (or a pytree of outputs) is checked
    through a random cotangent. Works for ``jax.custom_vjp``, ``jax.custom_jvp`` and functions
    built on ``jax.pure_callback`` with a custom rule.

    Parameters
    ----------
    fn : callable
        ``fn(*args) -> array or pytree of arrays``.
    *args
        Its arguments. Float arrays are float32 by default and float64 when
        ``jax.config.update("jax_enable_x64", True)`` is on; they stay on their device.
    argnums : int or sequence of int, optional
        The arguments to check; by default every argument with a floating-point leaf.
    oracle : {"differences", "forward"}
        Finite differences with error bars, or exact directional derivatives from ``jax.jvp``
        (batched with ``jax.vmap``, one at a time where that fails). A ``custom_vjp`` function has
        no forward mode; a ``custom_jvp`` one has.
    **options
        Keyword options of `gradprobe.check` (``seed``, ``rtol``, ...).

    Examples
    --------
    >>> import jax.numpy as jnp, gradprobe as gp
    >>> gp.jax.check(jnp.sin, jnp.array([0.5, -1.0, 2.0])).status
    'pass'
    """
    if not callable(fn):
        raise InvalidArgument(f"`fn` must be callable, got {type(fn).__name__}.", argument="fn")
    if oracle not in ("differences", "forward"):
        raise InvalidArgument(f"`oracle` must be 'differences' or 'forward', got {oracle!r}.", argument="oracle")
    require_known_options(options, "gp.jax.check", ("order", "mode"))
    refuse_process_pools(options, "gp.jax.check")
    for number, arg in enumerate(args):
        if any(type(leaf).__module__.split(".")[0] == "torch" for leaf in jax.tree_util.tree_leaves(arg)):
            raise InvalidArgument(
                f"`args` holds a torch tensor (argument {number}); gp.jax.check takes JAX or numpy arrays. Check a "
                "torch function with gp.torch.check, or pass `jnp.asarray(t.detach().numpy())`.",
                argument="args",
            )
    if argnums is None:
        numbers = [i for i, arg in enumerate(args) if any(_is_float(leaf) for leaf in jax.tree_util.tree_leaves(arg))]
    else:
        numbers = [argnums] if isinstance(argnums, int) else list(argnums)
        if any(not isinstance(i, int) or isinstance(i, bool) or not -len(args) <= i < len(args) for i in numbers):
            raise InvalidArgument(
                f"`argnums` must be argument positions in range({len(args)}), got {argnums!r}.", argument="argnums"
            )
        numbers = sorted({i % len(args) for i in numbers})
    order, modes = require_derivative(options.pop("order", 1), mode := options.pop("mode", "reverse"), oracle)
    keywords = {**({"argnums": argnums} if argnums is not None else {}), **({"oracle": oracle} if oracle != "differences" else {})}
    derivative = {**({"order": order} if order > 1 else {}), **({"mode": mode} if mode != "reverse" else {})}
    reproduce = call_line("gp.jax.check(fn, *args", {**keywords, **options, **derivative})
    functions = [_Function(fn, args, numbers, cotangent_seed(options))]
    complex_leaves = [name for name, leaf in zip(functions[0].names, functions[0].leaves) if jnp.iscomplexobj(leaf)]
    refuse_complex_derivatives(complex_leaves, "args", oracle=oracle, mode=mode, order=order)
    if oracle == "forward":
        refuse_own_reference(functions[0].custom_jvp_rules())
    if "forward" in modes:
        functions[0].require_forward_mode("mode", mode)
    for k in range(2, order + 1):  # each built first, at the starting point: errors before any check
        higher, arguments = functions[-1].differentiated(cotangent_seed(options) + ORDER_STREAM * k)
        checked = [*functions[-1].slot_numbers, *range(len(functions[-1].args), len(arguments))]
        functions.append(_higher_function(higher, arguments, checked, cotangent_seed(options), k))
    parts = [(k, "reverse", _check_one(f, f.args, f.slot_numbers, oracle, options, reproduce))
             for k, f in enumerate(functions, 1) if "reverse" in modes]  # fmt: skip
    if "forward" in modes:
        forward = (1, "forward", _check_one(functions[0], args, numbers, oracle, options, reproduce, forward=True))
        # A custom_jvp's VJP is JAX's transpose of the user's jvp rule: where both fail, the rule is
        # what the user wrote, so its own check is the one to show.
        parts = [forward, *parts] if functions[0].custom_jvp_rules() else [*parts, forward]
    return shown(parts)


def _higher_function(higher: Callable[..., Any], arguments: tuple[Any, ...], checked: list[int], seed: int, order: int) -> _Function:
    """The function of order `order` (`_Function.differentiated`), whose own VJP, the derivative of
    the one below, is tried once here: where JAX cannot differentiate it, say so before any work."""
    function = _Function(higher, arguments, checked, seed)
    try:
        function.vjp(function.leaves)
    except UserFunctionError as error:
        raise InvalidArgument(
            f"`order`={order} needs the derivative of `fn`'s VJP of order {order - 1}, which JAX could not take "
            f"({error.__cause__ or error}). Check order {order - 1} (`order`={order - 1}), or write that VJP with "
            "differentiable JAX operations (no pure_callback without a JVP rule).",
            argument="order",
        ) from error
    return function


def _check_one(
    function: _Function, args: tuple[Any, ...], numbers: list[int], oracle: OracleName, options: dict[str, Any],
    reproduce: str, *, forward: bool = False,
) -> Report:
    names = _arg_names(function.fn, len(args))
    skipped = [
        *(f"`{names[i]}` (dtype {arg.dtype})" for i, arg in enumerate(args)
          if i not in numbers and hasattr(arg, "dtype")),
        *function.skipped,
    ]  # fmt: skip
    notes = [f"arguments not checked: {', '.join(skipped)}."] if skipped else []
    options = dict(options)
    # Batched evaluation is the adapter's business: jax.vmap where it is exact and pays, a loop elsewhere.
    wanted = options.pop("vectorized", None)
    if wanted is None:
        wanted = batches_pay(options.get("strategy", "auto"), sum(int(np.size(leaf)) for leaf in function.leaves))
    vectorized = bool(wanted) and function.vmap_consistent(options.get("shadow") is not False)
    if oracle == "forward":
        function.require_forward_mode()
        options = {**options, "oracle": function.oracle()}
    note = describe_outputs(function.shapes, function.seed, function.complex_outputs)
    loss = function.batched_loss if vectorized else function.loss
    notes = [*notes, *([note] if note else []), *([FORWARD_NOTE] if forward else [])]
    options = {**options, "vectorized": vectorized}
    grad = function.forward_grad if forward else function.grad
    report = check_contracted(loss, grad, function.params(), notes, options, reproduce)
    lower = function.reference_dtypes() if report.reference == "float64" else []
    if lower:
        report = replace(report, notes=(*report.notes, (
            f"the float64 reference is not float64 throughout: on float64 arguments `fn` still computes in "
            f"{'/'.join(lower)} (a cast such as `.astype(jnp.{lower[0]})`), so the numerical side has that precision's "
            "rounding; check the function without the cast to resolve it more finely."
        )))  # fmt: skip
    report = conjugate_values(report)  # complex values in JAX's convention, as the user's gradient is
    return without_held(report, {name: (int(mask.sum()), mask.size) for name, mask in function.held.items()})


# -- assertion -------------------------------------------------------------------------------------


def assert_gradients(fn: Callable[..., Any], *args: Any, allow_inconclusive: bool = False, **options: Any) -> Report:
    """Check ``fn``'s JAX gradient like `check` does, and raise `GradientMismatch` unless it passes.

    The exception's message is the whole readable report (diagnosis, worst elements, hint and a
    line that reproduces the check); its `report` attribute is the `Report`. In pytest the
    traceback stops at the test's own line.

    Parameters
    ----------
    fn, *args
        As for `check`.
    allow_inconclusive : bool
        Return instead of raising when the check could not decide (a point on a kink, a noisy
        function). By default an undecided check fails the assertion, as it proves nothing.
    **options
        Any keyword option of `check` (``argnums``, ``oracle``, ``seed``, ``rtol``...).

    Returns
    -------
    Report
        The report of a check that passed (or was inconclusive, if allowed).

    Raises
    ------
    GradientMismatch
        When the check fails (or is inconclusive and `allow_inconclusive` is False).

    Examples
    --------
    >>> import jax.numpy as jnp, gradprobe as gp
    >>> gp.jax.assert_gradients(jnp.sin, jnp.array([0.5, -1.0, 2.0])).status
    'pass'
    """
    __tracebackhide__ = True
    return assert_passes(lambda: check(fn, *args, **options), allow_inconclusive)
