"""`gradprobe.torch`: check PyTorch gradients (custom autograd Functions, modules) with error bars.

The adapter only converts. The parameters the core sees are numpy copies of the checked tensors
(bfloat16 ones in ml_dtypes' bfloat16); every loss evaluation turns them back into tensors of the
original dtype **on the original device**, runs the user's code there, and contracts a non-scalar
output with a fixed random cotangent on that device (in float64 where the device has it), so only
one number per evaluation comes back to the host. The analytic side is autograd's backward of that
same contraction, so a custom ``backward`` receives a cotangent in its output's own dtype; the
dtypes its forward ran in (bfloat16 under autocast, say) set the rounding allowed for it.

Torch's random number generator is re-seeded (inside `torch.random.fork_rng`, so the caller's
state is untouched) before every evaluation: dropout masks and other torch randomness are the same
in every evaluation, and the check is of the gradient for that draw. Randomness that does not come
from torch (atomics, numpy) is found and folded into the error bars by the core's
non-determinism check.

Where batches pay (`strategies._cost.batches_pay`: few parameters, or elements probed one by
one), evaluations are batched with `torch.func.vmap` when the function allows it and gives, bit
for bit, the values of one call at a time (batched matrix products usually do not, on a CPU);
otherwise, and for the few points at a time of a directional check of many parameters, they run
one at a time.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from .. import _passes as passes
from .._errors import InvalidArgument, InvalidValue, UserFunctionError
from ..estimate._calling import call_user as _user_call
from ..estimate._oracle import Oracle
from ..report._types import Report
from ..strategies._assert import assert_passes
from ..strategies._cost import batches_pay
from ._derivatives import FORWARD_NOTE, grad_output_names, ORDER_STREAM, against_own_jvp, require_derivative, shown
from ._complex import refuse_complex_derivatives
from ._vjp import call_line, check_contracted, cotangent_seed, describe_outputs, random_cotangents, refuse_process_pools, require_finite_gradient, require_known_options, without_held

__all__ = ["assert_gradients", "check", "check_module"]

OracleName = Literal["differences", "forward"]

# The vmap consistency test: a batch of this many points, the starting point itself at these rows.
_PROBE_ROWS, _SAME_ROWS = 8, (0, 3, 7)
# One vmap call holds about this many numbers per input or output (bounds the batch's memory).
_VMAP_NUMBERS = 2**22

_NUMPY_DTYPES = {
    torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64,
    torch.complex64: np.complex64, torch.complex128: np.complex128,
}  # fmt: skip
_CHECKED_DTYPES = (torch.bfloat16, *_NUMPY_DTYPES)
# The dtypes of the float64 reference (of a float or complex tensor below 64 bits).
_WIDE = (torch.float64, torch.complex128)


def _numpy_dtype(dtype: torch.dtype, argument: str) -> np.dtype:
    """The dtype the core holds values of `dtype` in: for bfloat16, ml_dtypes' (numpy has none;
    imported only when bfloat16 turns up)."""
    if dtype != torch.bfloat16:
        return np.dtype(_NUMPY_DTYPES[dtype])
    try:
        import ml_dtypes
    except ImportError:
        raise InvalidArgument(
            f"`{argument}` holds or computes in bfloat16, which gradprobe checks with the ml_dtypes package installed "
            "(`pip install gradprobe[torch]` or `pip install ml_dtypes`); or convert it with `.float()`.",
            argument=argument,
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def _readable(values: np.ndarray) -> np.ndarray:
    """`values` as an array torch can read: bfloat16 (ml_dtypes) as float32, which holds it exactly."""
    values = np.asarray(values)
    return values.astype(np.float32) if values.dtype.name == "bfloat16" else values


def _dtype_for(values: np.ndarray, like: torch.Tensor) -> torch.dtype:
    """The tensor's own dtype, or float64 (complex128) when the core sends float64 (complex128) values (the float64 reference)."""
    dtype = np.asarray(values).dtype
    return torch.float64 if dtype == np.float64 else torch.complex128 if dtype == np.complex128 else like.dtype


def _as_tensor(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """`values` as a tensor of `_dtype_for`'s dtype on `like`'s device. The core hands every
    evaluation fresh arrays (`Objective`): on the CPU in that dtype the tensor shares their memory,
    no copy of the parameters per evaluation. A tensor the loss keeps keeps that array alive, and
    the core then makes its next point elsewhere (`Objective._handoff_vector`)."""
    values = np.asarray(values)
    dtype = _dtype_for(values, like)
    if not values.flags.writeable:  # torch.from_numpy warns on a read-only array
        return torch.tensor(_readable(values), dtype=dtype, device=like.device)
    if values.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 has torch's bits: read as they are
        return torch.from_numpy(values.view(np.int16)).view(torch.bfloat16).to(device=like.device, dtype=dtype)
    return torch.from_numpy(values).to(device=like.device, dtype=dtype)


def _needs_layout(tensor: torch.Tensor) -> bool:
    """Whether `tensor` is a view into a larger storage without overlapping itself (an expanded
    tensor's elements share memory: those are checked as independent elements instead)."""
    size = tensor.untyped_storage().nbytes() // tensor.element_size()
    if tensor.storage_offset() == 0 and tensor.is_contiguous() and size == tensor.numel():
        return False
    # Axes by increasing stride: each must step past everything the smaller ones reach (no index
    # arrays over a storage that may be far larger than the view).
    reach = 0
    for stride, length in sorted((st, n) for st, n in zip(tensor.stride(), tensor.shape) if n > 1):
        if stride <= reach:
            return False
        reach += stride * (length - 1)
    return True


def _widened(tensors: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> bool:
    """Whether this evaluation is the float64 reference of lower-precision tensors."""
    return any(t.dtype in _WIDE and like[name].dtype not in _WIDE for name, t in tensors.items())


class _InFloat64(TorchFunctionMode):
    """Every floating-point tensor an operation receives, as float64 (a differentiable cast): the
    float64 reference of a function that closes over lower-precision tensors, which cannot be
    converted from outside. The user's tensors are read, never written."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", None) == "__get__":
            # An attribute (`x.requires_grad`, `x.shape`): read off the tensor itself. Read off a
            # float64 copy made under no_grad, `requires_grad` would be False.
            return func(*args, **(kwargs or {}))
        result = func(*_upcast(args), **_upcast(kwargs or {}))
        if func in _CASTS and isinstance(result, torch.Tensor) and result.is_floating_point() and result.dtype != torch.float64:
            # A cast down (`logits.float()`, `.to(torch.bfloat16)`) would round the reference at
            # that precision, a staircase: kept in float64, wherever the cast moved it.
            return _upcast(args[0]).to(result.device)
        return result


#: The tensor methods that change a dtype, which `_InFloat64` keeps float64.
_CASTS = frozenset({torch.Tensor.float, torch.Tensor.half, torch.Tensor.bfloat16, torch.Tensor.to, torch.Tensor.type, torch.Tensor.type_as, torch.Tensor.double})


class _DtypesSeen(TorchFunctionMode):
    """Records the floating-point dtypes of what the operations it sees return. Under autocast (or
    a cast in the user's code) a float32 computation runs partly in bfloat16 or float16, and its
    gradient rounds there: what ran is seen, wherever autocast was entered and whichever
    operations it covers."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        self.dtypes.update(t.dtype for t in _float_outputs(result))
        return result


class _CastsDown(TorchFunctionMode):
    """Whether an operation turned float64 tensors into lower-precision ones (`logits.float()`,
    `softmax(x, dtype=torch.float32)`): in the float64 reference that rounds, a staircase."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        # One result only: `broadcast_tensors(p64, y32)` hands y back as it was, no cast.
        if not self.seen and isinstance(result, torch.Tensor) and result.is_floating_point() and result.dtype != torch.float64:
            self.seen = any(t.dtype == torch.float64 for t in _float_outputs([*args, *(kwargs or {}).values()]))
        return result


def _upcast(value: Any) -> Any:
    """A floating-point tensor (or a tuple/list/dict of them) cast to float64, a differentiable copy
    that leaves the original as it is; anything else as is. The float64 reference evaluates the
    user's whole computation in float64: the checked tensors, and the inputs, targets, buffers and
    frozen parameters they meet."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            return value.to(torch.complex128) if value.dtype != torch.complex128 else value
        return value.to(torch.float64) if value.is_floating_point() and value.dtype != torch.float64 else value
    if isinstance(value, dict):
        return {key: _upcast(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_upcast(v) for v in value)
    return value


def _host_values(tensor: torch.Tensor, argument: str, copy: bool) -> np.ndarray:
    """The values of `tensor` on the host, in the dtype the core holds them in: without `copy`, a
    view of a CPU tensor's memory where numpy reads its dtype (`Params` copies them into its own
    vector; a copy here would be one more vector of millions); bfloat16 through float64, which holds
    it exactly."""
    values = tensor.cpu().resolve_conj().resolve_neg()  # numpy reads neither lazy bit
    if values.dtype == torch.bfloat16:
        return values.to(torch.float64).numpy().astype(_numpy_dtype(values.dtype, argument))
    return values.numpy().copy() if copy else values.numpy()


def _to_numpy(gradient: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
    """A gradient on the host; None (unused input) and autograd's ZeroTensor (`torch.sgn`'s
    backward, say) are zeros. A bfloat16 one comes as float32, which holds it exactly."""
    if gradient is None or gradient._is_zerotensor():
        return np.zeros(tuple(like.shape), dtype=_NUMPY_DTYPES.get(like.dtype, np.float32))  # bfloat16: float32
    if gradient.layout != torch.strided:  # a sparse one (`nn.Embedding(sparse=True)`)
        gradient = gradient.to_dense()
    gradient = gradient.detach().cpu().resolve_conj()  # a complex backward may hand back a lazy conjugate
    return (gradient.float() if gradient.dtype == torch.bfloat16 else gradient).numpy()


def _checked_outputs(output: Any) -> list[torch.Tensor]:
    """The floating-point and complex tensors of an output: the ones a check contracts."""
    if isinstance(output, torch.Tensor) and output.is_complex():
        return [output]
    if isinstance(output, dict):
        return [t for value in output.values() for t in _checked_outputs(value)]
    if isinstance(output, (list, tuple)):
        return [t for value in output for t in _checked_outputs(value)]
    return _float_outputs(output)


def _float_outputs(output: Any) -> list[torch.Tensor]:
    """The floating-point tensors of an output (a tensor or nested tuple/list/dict of them)."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, dict):
        return [t for value in output.values() for t in _float_outputs(value)]
    if isinstance(output, (list, tuple)):
        return [t for value in output for t in _float_outputs(value)]
    return []


@contextmanager
def _forward_mode() -> Iterator[None]:
    """Forward-mode AD, without the DeprecationWarning torch's own JVP decompositions emit on first use."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
        yield


def _accumulation_dtype(device: torch.device, complex_: bool = False) -> torch.dtype:
    # MPS has no float64; everything else contracts in float64 to keep the loss's rounding low.
    if complex_:
        return torch.complex64 if device.type == "mps" else torch.complex128
    return torch.float32 if device.type == "mps" else torch.float64


class _Gradient:
    """The gradient under test as the core calls it, from autograd's backward (`_Function.grad`)
    or, with `forward`, from forward mode (`_Function.forward_grad`); `computed_in` says which
    dtype it computed in."""

    def __init__(self, function: _Function, *, forward: bool = False) -> None:
        self.function = function
        self.forward = forward

    def __call__(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.function.forward_grad(values) if self.forward else self.function.grad(values)

    @property
    def computed_in(self) -> np.dtype | None:
        return self.function.computed_in


class _Function:
    """A torch computation seen by the core as ``loss(numpy dict) -> float`` and its gradient.

    `call` maps a dict name -> tensor (the checked tensors) to the user's output. `like` holds
    the original tensors, whose dtype and device every rebuilt tensor takes.
    """

    def __init__(
        self,
        call: Callable[[dict[str, torch.Tensor]], Any],
        like: dict[str, torch.Tensor],
        argument: str,
        seed: int,
        inputs_argument: str,
        *,
        autograd: bool = False,
        writable: bool = False,
    ) -> None:
        self.call = call
        self.like = like
        # Can the user's code write the tensors of `like` during the check (a module's parameters,
        # which its forward and `loss_fn` reach)? Then the core gets a copy of their values, else views.
        self.writable = writable
        self.argument = argument
        self.inputs_argument = inputs_argument
        self.seed = seed
        # Does the function call autograd itself (a gradient penalty, an HVP, a derivative taken
        # for a higher order)? Then it is evaluated with grad mode on and inputs that require grad.
        self.autograd = autograd
        # Whose backward an error in it is, and where: `check_module` runs the module's and `loss_fn`'s.
        self.backward_is = (argument, "in its backward")
        self.cuda = sorted({t.device.index or 0 for t in like.values() if t.device.type == "cuda"})
        self.batched_jvp: bool | None = None  # does torch.func.vmap work on its JVP? (oracle="forward")
        # The floating-point dtypes the gradient under test was computed in, and its float64 reference.
        self.dtypes_seen: set[torch.dtype] = set()
        self.reference_dtypes: set[torch.dtype] = set()
        # Under the float64 reference: does the function need `_InFloat64` (None: not known yet)?
        self.everything_in_float64: bool | None = None
        for name, t in like.items():
            if t.numel() == 0:
                raise InvalidValue(
                    f"`{inputs_argument}` tensor `{name}` is empty (shape {tuple(t.shape)}); there is nothing to check.",
                    argument=inputs_argument,
                )
        # Elements that are not finite at the point (an attention mask's -inf) have no derivative:
        # they keep their value at every point the loss is evaluated at, and are not checked.
        self.held = {}
        for name, t in like.items():
            # One reduction first (a sum is finite when every element is, unless it overflows; then
            # the mask is made anyway): three passes over a model of millions saved.
            if not bool(torch.isfinite(t.detach().sum())):
                mask = ~torch.isfinite(t.detach())
                if bool(mask.any()):
                    self.held[name] = mask
        for name, mask in self.held.items():
            if bool(mask.all()):
                raise InvalidValue(
                    f"`{inputs_argument}` tensor `{name}` holds only NaN or inf; there is nothing to check there. "
                    "Pass it with requires_grad=False.",
                    argument=inputs_argument,
                )
        # Inputs that are views into a larger storage (a storage offset, gaps between elements):
        # each evaluation lays its tensor out the same way, in a copy of that storage, for ops
        # that address memory themselves (as_strided).
        self.laid_out = {name: t for name, t in like.items() if _needs_layout(t)}
        start = self._first_outputs()
        if not start:
            raise InvalidArgument(
                f"`{argument}` returned no floating-point tensor; return the output(s) to check "
                "(a tensor, or a tuple of tensors).",
                argument=argument,
            )
        if not all(bool(torch.isfinite(t).all()) for t in start):
            raise InvalidValue(
                f"`{argument}` returned NaN or inf at the starting point; a gradient can only be checked where "
                "the output is finite.",
                argument=argument,
            )
        self.shapes = [tuple(t.shape) for t in start]
        self.output_dtypes = [t.dtype for t in start]
        self.complex_outputs = [t.is_complex() for t in start]
        cotangents = random_cotangents(self.shapes, seed, self.complex_outputs)
        # Rounded to each output's dtype first, so the contraction and the backward use the same v.
        self.cotangents = [
            torch.as_tensor(v).to(device=t.device, dtype=t.dtype).to(_accumulation_dtype(t.device, t.is_complex()))
            for v, t in zip(cotangents, start)
        ]
        # The loss at the starting point, from the outputs just computed: the core's evaluation
        # there is then not one more forward pass (`loss`). Not with held elements (NaN there),
        # nor where user code may write the tensors the start is compared with.
        self._loss_at_start = None if self.held or writable else float(self._contracted(start).item())
        # The core calls `grad` twice at the start (`gradient_spread`): the first call runs the
        # backward twice through its forward, as gradcheck does, and keeps the second for it.
        self._second_at_start: dict[str, np.ndarray] | None = None
        self._backward_twice = not (self.held or writable)

    @property
    def what(self) -> str:
        """The user's code being evaluated, as the errors name it: `fn`, or a module with its loss."""
        return "the module or `loss_fn`" if self.argument == "loss_fn" else f"`{self.argument}`"

    @contextmanager
    def fixed_rng(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=self.cuda):
            # Not torch.manual_seed: it also queues seeds for every lazy backend (cuda, xpu, mtia)
            # and records a stack trace for each, which costs more than a small forward pass.
            torch.default_generator.manual_seed(self.seed)
            for index in self.cuda:
                torch.cuda.default_generators[index].manual_seed(self.seed)
            yield

    def _first_outputs(self) -> list[torch.Tensor]:
        """The outputs at the starting point; finds out whether the function calls autograd."""
        try:
            with self.evaluation():
                # Clones: a function that works in place must not reach the caller's tensors.
                return [t.detach() for t in self._outputs(self.start())]
        except UserFunctionError as error:
            if self.autograd or not _calls_autograd(error):
                raise
        self.autograd = True
        with self.evaluation():
            return [t.detach() for t in self._outputs(self.start())]

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """How the loss is evaluated: without autograd's bookkeeping, unless the function needs it."""
        with (torch.enable_grad() if self.autograd else torch.no_grad()), self.fixed_rng():
            yield

    def start(self) -> dict[str, torch.Tensor]:
        return {
            name: self._lay_out(name, t.detach().clone()).requires_grad_(self.autograd) for name, t in self.like.items()
        }

    def _lay_out(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` (the values of input `name`), laid out in memory like the user's input."""
        like = self.like[name]
        if name not in self.laid_out or tensor.shape != like.shape:
            return tensor
        storage = torch.empty(0, dtype=like.dtype, device=like.device).set_(like.untyped_storage())
        copy = storage.detach().to(tensor.dtype, copy=True)
        laid = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
        laid.set_(copy.untyped_storage(), like.storage_offset(), like.shape, like.stride())
        with torch.no_grad():
            laid.copy_(tensor)
        return laid

    def params(self) -> dict[str, np.ndarray]:
        # Held elements are 0 there: the core sees finite numbers, the loss never sees them.
        return {
            name: _host_values(torch.where(self.held[name], 0.0, t.detach()) if name in self.held else t.detach(), self.argument, self.writable)
            for name, t in self.like.items()
        }

    def _hold(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` (one point, or a batch of them along a leading axis) with the held elements at
        their values at the starting point."""
        mask = self.held.get(name)
        if mask is None:
            return tensor
        return torch.where(mask, self.like[name].detach().to(tensor.dtype), tensor)

    def tensors(self, values: dict[str, np.ndarray], *, requires_grad: bool = False) -> dict[str, torch.Tensor]:
        return {
            name: self._lay_out(name, self._hold(name, _as_tensor(values[name], t))).requires_grad_(requires_grad)
            for name, t in self.like.items()
        }

    def _outputs(self, tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        if not _widened(tensors, self.like):
            outputs = _checked_outputs(_user_call(self.call, self.argument, tensors))
        elif self.everything_in_float64 is None:
            # The first float64 call: as it is, else with every operation's tensors in float64 (the
            # function closes over float32 tensors: a batch, a module, a loss's weights; or it casts
            # down, `logits.float()`, which would round the reference at that precision).
            try:
                casts = _CastsDown()
                with casts:
                    outputs = _checked_outputs(_user_call(self.call, self.argument, tensors))
                self.everything_in_float64 = casts.seen
            except UserFunctionError:
                self.everything_in_float64 = True
            if self.everything_in_float64:
                # Re-seeded: the first try drew dropout masks from the seeded generator already.
                with self.fixed_rng(), _InFloat64():
                    outputs = _checked_outputs(_user_call(self.call, self.argument, tensors))
        else:
            with _InFloat64() if self.everything_in_float64 else contextlib.nullcontext():
                outputs = _checked_outputs(_user_call(self.call, self.argument, tensors))
        if hasattr(self, "shapes") and [tuple(t.shape) for t in outputs] != self.shapes:
            raise InvalidArgument(
                f"`{self.argument}` returned outputs of shapes {[tuple(t.shape) for t in outputs]} here but "
                f"{self.shapes} at the starting point; the output structure must not depend on the inputs' values.",
                argument=self.argument,
            )
        return outputs

    def contract(self, tensors: dict[str, torch.Tensor], cotangents: list[torch.Tensor] | None = None) -> torch.Tensor:
        """<v, output> as a 0-d tensor on the output's device (v: the fixed `cotangents`, or those given)."""
        return self._contracted(self._outputs(tensors), cotangents)

    def _contracted(self, outputs: list[torch.Tensor], cotangents: list[torch.Tensor] | None = None) -> torch.Tensor:
        total = None
        for y, v in zip(outputs, self.cotangents if cotangents is None else cotangents):
            # Re <v, y>: for a complex output, Re sum(conj(v) y), whose gradient autograd gives (`_vjp`)
            term = torch.sum(torch.real(torch.conj(v) * y.to(v.dtype))) if v.is_complex() else torch.sum(y.to(v.dtype) * v)
            total = term if total is None else total + term.to(total.device)
        return total

    # -- what the core calls -----------------------------------------------------------------------

    def loss(self, values: dict[str, np.ndarray]) -> float:
        # Tried on the first call only (the core's, at the start): no comparison on later ones.
        first, self._loss_at_start = self._loss_at_start, None
        if first is not None and self._at_start(values):
            return first
        with self.evaluation():
            return float(self.contract(self.tensors(values, requires_grad=self.autograd)).item())

    def _at_start(self, values: dict[str, np.ndarray]) -> bool:
        """Whether `values` are the starting point's, in the tensors' own dtypes."""
        if any(_dtype_for(np.asarray(values[name]), t) != t.dtype for name, t in self.like.items()):
            return False  # the float64 reference of lower-precision tensors
        return all(torch.equal(_as_tensor(values[name], t), t.detach()) for name, t in self.like.items())

    def grad(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        second, self._second_at_start = self._second_at_start, None
        if second is not None and self._at_start(values):
            return second
        twice, self._backward_twice = self._backward_twice and self._at_start(values), False
        tensors = self.tensors(values, requires_grad=True)
        recorder = _DtypesSeen()  # the forward's dtypes are its backward's (autograd keeps each op's)
        with torch.enable_grad(), self.fixed_rng(), recorder:
            total = self.contract(tensors)
        (self.reference_dtypes if _widened(tensors, self.like) else self.dtypes_seen).update(recorder.dtypes)
        inputs = list(tensors.values())
        if not total.requires_grad:
            return self._numpy_gradient(tensors, [None] * len(inputs))

        def backward(retain: bool) -> Any:
            # An error in a custom backward is the user's function's, not a `grad` they never passed.
            return _user_call(
                lambda: torch.autograd.grad(total, inputs, allow_unused=True, retain_graph=retain),
                self.backward_is[0], where=self.backward_is[1],
            )  # fmt: skip

        gradient = self._numpy_gradient(tensors, backward(retain=twice))
        if twice:
            try:
                self._second_at_start = self._numpy_gradient(tensors, backward(retain=False))
            except (UserFunctionError, InvalidValue):
                pass  # a backward that runs once per forward: the second call makes its own
        return gradient

    def _numpy_gradient(self, tensors: dict[str, torch.Tensor], grads: Sequence[torch.Tensor | None]) -> dict[str, np.ndarray]:
        gradient = {name: _to_numpy(g, tensors[name]) for name, g in zip(tensors, grads)}
        for name, mask in self.held.items():  # not checked: the loss never moves them
            gradient[name] = np.where(mask.cpu().numpy(), 0, gradient[name]).astype(gradient[name].dtype)
        require_finite_gradient(gradient, self.argument, "autograd's backward")
        return gradient

    def _vmapped(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        names = list(self.like)
        with torch.no_grad(), self.fixed_rng():
            return torch.func.vmap(lambda *t: self.contract(dict(zip(names, t))))(*tensors)

    def vmap_consistent(self, extra: int = 0, reference: bool = True) -> bool:
        """Whether `torch.func.vmap` evaluates the function, and bit for bit as one call at a time.

        Batched matrix products round differently from single ones, and differently at each
        position in the batch; such a function is evaluated one point at a time instead, so that
        identical points always give identical values (anything else reads as non-determinism).
        Under the float64 `reference` (inputs below float64) it is tested in float64 too, where the
        check's points are evaluated. `extra` is the size of the largest other tensor the function
        touches (the batch).
        """
        start = self.start()
        widest = max([extra, *(t.numel() for t in start.values()), *(int(np.prod(s)) for s in self.shapes)])
        self.rows_per_call = max(1, _VMAP_NUMBERS // max(widest, 1))
        if self.autograd:  # autograd.grad does not run under torch.func.vmap
            return False
        points = [start]
        if reference and any(t.dtype not in _WIDE for t in start.values()):
            points.append({name: t.to(_WIDE[1] if t.is_complex() else _WIDE[0]) for name, t in start.items()})
        try:
            if not all(self._batch_matches(point) for point in points):
                return False
        except Exception:  # not vmap-able (old-style Function, data-dependent control flow, randomness...)
            return False
        return True

    def _batch_matches(self, point: dict[str, torch.Tensor]) -> bool:
        """Whether a vmap batch around `point` gives `point`'s own value at the rows that hold it."""
        with torch.no_grad(), self.fixed_rng():
            single = self.contract(point)
        if self.everything_in_float64:  # `_InFloat64` is not tried under vmap (`batched_loss`)
            return False
        # Rows scaled apart by a factor each (a random draw per element cost more than the check
        # itself at 1e6 parameters), the rows `_SAME_ROWS` left at the point.
        factors = 1 + 1e-3 * torch.arange(1, _PROBE_ROWS + 1, dtype=torch.float64) / _PROBE_ROWS
        factors[list(_SAME_ROWS)] = 1.0
        batch = []
        for t in point.values():
            scale = factors.to(device=t.device, dtype=t.dtype).reshape(-1, *([1] * t.dim()))
            batch.append(t.unsqueeze(0) * scale)
        values = self._vmapped(batch)
        return all(bool(values[i] == single) for i in _SAME_ROWS)

    def batched_loss(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """The loss at a batch of parameter sets (a leading axis on every value), through vmap."""
        widened = any(np.asarray(values[name]).dtype == np.float64 and t.dtype != torch.float64 for name, t in self.like.items())
        if widened and self.everything_in_float64 is not False:
            # Whether the float64 reference needs `_InFloat64` is found one call at a time, and
            # `_InFloat64` is not tried under vmap: one point at a time until then, or for good.
            count = len(next(iter(values.values())))
            return np.array([self.loss({name: np.asarray(v)[k] for name, v in values.items()}) for k in range(count)])
        tensors = [
            self._hold(name, _as_tensor(values[name], t))
            for name, t in self.like.items()
        ]
        count = len(tensors[0])
        parts = [
            self._vmapped([t[start : start + self.rows_per_call] for t in tensors]).detach().cpu().numpy()
            for start in range(0, count, self.rows_per_call)
        ]
        return np.concatenate(parts).astype(np.float64)

    @property
    def computed_in(self) -> np.dtype | None:
        """The coarsest floating-point dtype the gradient under test was computed in (None before
        the first call); the core takes the rounding allowance from it."""
        if not self.dtypes_seen:
            return None
        return _numpy_dtype(max(self.dtypes_seen, key=lambda d: torch.finfo(d).eps), self.argument)

    # -- order > 1 ---------------------------------------------------------------------------------

    def differentiated(self, seed: int) -> _Function:
        """The function one order up, ``(inputs, v) -> <w, VJP(inputs, v)>`` for a fixed random `w`:
        its gradient is the derivative of this function's VJP (the double backward) with respect
        to the inputs and to the cotangent `v` it receives (named ``grad_output``), as
        gradgradcheck takes it: a backward that detaches its incoming gradient is wrong there."""
        self.require_differentiable_backward()
        like = list(self.like.values())
        weights = [
            torch.as_tensor(w).to(device=t.device, dtype=t.dtype).to(_accumulation_dtype(t.device))
            for w, t in zip(random_cotangents([tuple(t.shape) for t in like], seed), like)
        ]
        outputs = grad_output_names(len(self.cotangents), set(self.like))
        seeds = {name: v.detach().to(dtype) for name, v, dtype in zip(outputs, self.cotangents, self.output_dtypes)}

        def call(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
            inputs = {name: tensors[name] for name in self.like}
            cotangents = [tensors[name].to(v.dtype) for name, v in zip(outputs, self.cotangents)]
            gradients = self.gradient(inputs, create_graph=True, cotangents=cotangents)
            total = sum((g.to(w.dtype) * w).sum() for g, w in zip(gradients, weights) if g is not None)
            # A backward that builds no graph (detached) gives a constant here: its derivative is 0.
            return total if isinstance(total, torch.Tensor) else torch.zeros((), dtype=weights[0].dtype)

        higher = _Function(
            call, {**self.like, **seeds}, self.argument, self.seed, self.inputs_argument, autograd=True, writable=self.writable
        )
        higher.backward_is = self.backward_is
        return higher

    def gradient(
        self, tensors: dict[str, torch.Tensor], *, create_graph: bool = False, cotangents: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor | None]:
        """Autograd's gradient of the contraction at `tensors` (which require grad), per input."""
        total = self.contract(tensors, cotangents)
        if not total.requires_grad:
            return [None] * len(tensors)
        # An error in a custom backward is the user's function's, not a `grad` they never passed.
        return list(_user_call(
            lambda: torch.autograd.grad(total, list(tensors.values()), allow_unused=True, create_graph=create_graph),
            self.backward_is[0], where=self.backward_is[1],
        ))  # fmt: skip

    def require_differentiable_backward(self) -> None:
        """Fail before any work when a backward cannot be differentiated at all
        (``@once_differentiable``). Its refusal shows only when the cotangent it receives requires
        grad, as it does here, not with the fixed cotangent of the check."""
        with torch.enable_grad(), self.fixed_rng():
            tensors = [t.requires_grad_() for t in self.start().values()]
            outputs = self._outputs(dict(zip(self.like, tensors)))
            seeds = [v.to(y.dtype).clone().requires_grad_() for y, v in zip(outputs, self.cotangents)]
            wanted = [(y, v) for y, v in zip(outputs, seeds) if y.requires_grad]
            if not wanted:
                return
            grads = _user_call(
                lambda: torch.autograd.grad([y for y, _ in wanted], tensors, [v for _, v in wanted], allow_unused=True,
                                            create_graph=True),
                self.backward_is[0], where=self.backward_is[1],
            )  # fmt: skip
            if not any(_refuses_differentiation(g.grad_fn) for g in grads if g is not None):
                return
        raise InvalidArgument(
            f"`order` above 1 needs the derivative of {self.what}'s backward, but a backward in it is marked "
            "@once_differentiable, which autograd cannot differentiate. Write that backward with differentiable torch "
            "operations (without the decorator) to check its second order, or use order=1.",
            argument="order",
        )

    # -- oracle="forward" --------------------------------------------------------------------------

    def oracle(self) -> Oracle:
        primals = self.start()
        return Oracle(lambda indices: self.directional(primals, indices), size=sum(t.numel() for t in primals.values()))

    def directional(self, primals: dict[str, torch.Tensor], indices: np.ndarray) -> np.ndarray:
        """Forward-mode derivatives of the contraction at `primals` along the unit vectors of the
        flat `indices`: ``torch.func.jvp`` batched with vmap where it works, else one at a time."""
        tangents = self._one_hot(primals, indices)
        if self.batched_jvp is not False:
            try:
                values = self._batched(primals, tangents)
                self.batched_jvp = True
                return values
            except Exception:
                if self.batched_jvp:
                    raise
                self.batched_jvp = False  # not vmap-able: loop from now on
        return np.array([self._one(primals, [t[k] for t in tangents]) for k in range(len(indices))])

    @staticmethod
    def _one_hot(primals: dict[str, torch.Tensor], indices: np.ndarray) -> list[torch.Tensor]:
        tangents, start = [], 0
        for t in primals.values():
            size = t.numel()
            batch = torch.zeros((len(indices), size), dtype=t.dtype, device=t.device)
            rows = np.flatnonzero((indices >= start) & (indices < start + size))
            if len(rows):
                batch[torch.as_tensor(rows, device=t.device), torch.as_tensor(indices[rows] - start, device=t.device)] = 1
            tangents.append(batch.reshape(len(indices), *t.shape))
            start += size
        return tangents

    # -- mode="forward" ----------------------------------------------------------------------------

    def forward_grad(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gradient under test assembled from forward mode: element i is the JVP along the i-th
        unit vector, contracted like the loss (the user's ``jvp`` rules run, not their backward)."""
        primals = self.tensors(values)
        size = sum(t.numel() for t in primals.values())
        per_call = max(1, _VMAP_NUMBERS // max(size, *(int(np.prod(s)) for s in self.shapes), 1))
        recorder = _DtypesSeen()
        with recorder:
            flat = np.concatenate([
                _user_call(self.directional, self.argument, primals, np.arange(start, min(start + per_call, size)),
                           where="in its forward-mode derivative (jvp)")
                for start in range(0, size, per_call)
            ])  # fmt: skip
        (self.reference_dtypes if _widened(primals, self.like) else self.dtypes_seen).update(recorder.dtypes)
        gradient, start = {}, 0
        for name, t in primals.items():
            gradient[name] = flat[start : start + t.numel()].reshape(t.shape).astype(_numpy_dtype(t.dtype, self.argument))
            start += t.numel()
        for name, mask in self.held.items():  # not checked: the loss never moves them
            gradient[name] = np.where(mask.cpu().numpy(), 0, gradient[name]).astype(gradient[name].dtype)
        require_finite_gradient(gradient, self.argument, "forward-mode AD")
        return gradient

    def custom_jvp_rules(self) -> list[str]:
        """The custom autograd Functions in the computation that define their own ``jvp`` (found
        in autograd's graph of one evaluation): their forward derivative is user code."""
        with torch.enable_grad(), self.fixed_rng():
            total = self.contract({name: t.requires_grad_() for name, t in self.start().items()})
        found = set()
        for node in _graph(total.grad_fn):
            cls = getattr(type(node), "_forward_cls", None)
            user_rule = cls is not None and getattr(cls, "jvp", None) is not getattr(torch.autograd.Function, "jvp", None)
            if user_rule and not cls.__module__.startswith("torch."):  # torch's own Functions are not under test
                found.add(cls.__name__)
        return sorted(found)

    def _batched(self, primals: dict[str, torch.Tensor], tangents: list[torch.Tensor]) -> np.ndarray:
        names = list(primals)

        def directional(*tangent: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(
                lambda *p: self.contract(dict(zip(names, p))), tuple(primals.values()), tangent
            )[1]

        with _forward_mode(), self.fixed_rng():
            return torch.func.vmap(directional)(*tangents).detach().cpu().numpy().astype(np.float64)

    def _one(self, primals: dict[str, torch.Tensor], tangent: list[torch.Tensor]) -> float:
        import torch.autograd.forward_ad as forward_ad

        with _forward_mode(), forward_ad.dual_level(), self.fixed_rng():
            duals = {name: forward_ad.make_dual(p, t) for (name, p), t in zip(primals.items(), tangent)}
            out_tangent = forward_ad.unpack_dual(self.contract(duals)).tangent
        return 0.0 if out_tangent is None else float(out_tangent.item())

    def require_forward_mode(self, argument: str = "oracle", value: str = "forward") -> None:
        """Fail early, with the fix, when the function has no forward-mode derivative (which
        `argument`, oracle='forward' or mode='forward', needs)."""
        primals = self.start()
        tangent = [torch.zeros_like(t) for t in primals.values()]
        try:
            self._one(primals, tangent)
        except UserFunctionError as error:
            fallback = "the default oracle='differences'" if argument == "oracle" else "mode='reverse'"
            raise InvalidArgument(
                f"`{argument}`={value!r} needs forward-mode AD, but {self.what} does not support it "
                f"({error.__cause__ or error}). Give custom autograd.Functions a `jvp` staticmethod "
                f"(and `setup_context` for vmap batching), or use {fallback}.",
                argument=argument,
            ) from error


def _graph(node: Any) -> Iterator[Any]:
    """Every node of autograd's graph reachable from `node`, once each."""
    seen, stack = set(), [node]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        yield node
        stack.extend(following for following, _ in node.next_functions)


def _refuses_differentiation(node: Any) -> bool:
    """Whether autograd's graph from `node` holds the node `@once_differentiable` puts after a
    backward: it raises only when run, and runs only for a backward without `inputs=`."""
    return any(found.name() == "torch::autograd::Error" for found in _graph(node))


def _calls_autograd(error: UserFunctionError) -> bool:
    """Whether the user's function failed for calling autograd on tensors that carry no graph (it
    was evaluated under no_grad, on inputs that do not require grad): it needs autograd itself."""
    cause = error.__cause__
    return isinstance(cause, RuntimeError) and any(
        words in str(cause) for words in ("does not require grad", "does not have a grad_fn", "One of the differentiated")
    )


def _require_checked_dtype(tensor: torch.Tensor, name: str, argument: str) -> None:
    if tensor.layout != torch.strided:
        raise InvalidArgument(
            f"`{argument}` tensor `{name}` is {str(tensor.layout).removeprefix('torch.')}; gradprobe checks dense "
            "tensors. Check the function of its dense values (`.to_dense()` inside the function), or pass it "
            "with requires_grad=False.",
            argument=argument,
        )
    if tensor.dtype == torch.complex32:
        raise InvalidArgument(
            f"`{argument}` tensor `{name}` has dtype torch.complex32 (chalf), which gradprobe does not check (numpy "
            "has no complex32 to hold it). Convert it with `.to(torch.complex64)`, or pass it with requires_grad=False.",
            argument=argument,
        )
    if tensor.dtype not in _CHECKED_DTYPES:
        raise InvalidArgument(
            f"`{argument}` tensor `{name}` has dtype {tensor.dtype}; gradprobe checks bfloat16 tensors and "
            "float16, float32, float64, complex64 and complex128 ones. Convert it (e.g. `.float()`) or pass it with "
            "requires_grad=False.",
            argument=argument,
        )
    _numpy_dtype(tensor.dtype, argument)  # ml_dtypes for bfloat16: its absence is an argument error, now


def _input_names(fn: Callable[..., Any], count: int) -> list[str]:
    """Names of `fn`'s positional parameters (``x``, ``W``), else ``input0``, ``input1``..."""
    fallback = [f"input{i}" for i in range(count)]
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fallback
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < count:
        return fallback
    return positional[:count]


def _run(
    function: _Function, options: dict[str, Any], oracle: OracleName, notes: list[str], head: str, extra: int = 0
) -> Report:
    """The check of `function`'s backward, with ``order=k`` of its derivatives up to order k, and
    with ``mode="forward"`` (or "both") of its forward-mode rules (`_derivatives`)."""
    options = dict(options)
    order, modes = require_derivative(options.pop("order", 1), mode := options.pop("mode", "reverse"), oracle)
    complex_inputs = [name for name, t in function.like.items() if t.is_complex()]
    refuse_complex_derivatives(complex_inputs, function.inputs_argument, oracle=oracle, mode=mode, order=order)
    reproduce = call_line(head, {**({"oracle": oracle} if oracle != "differences" else {}), **options,
                                 **({"order": order} if order > 1 else {}), **({"mode": mode} if mode != "reverse" else {})})  # fmt: skip
    own_rules = function.custom_jvp_rules() if oracle == "forward" else []
    if "forward" in modes:
        function.require_forward_mode("mode", mode)
    functions = [function]
    for k in range(2, order + 1):  # built first: a backward that cannot be differentiated fails before any work
        functions.append(functions[-1].differentiated(seed=cotangent_seed(options) + ORDER_STREAM * k))
    parts = [(k, "reverse", against_own_jvp(_run_one(f, options, oracle, notes, reproduce, extra), own_rules))
             for k, f in enumerate(functions, 1) if "reverse" in modes]  # fmt: skip
    if "forward" in modes:
        parts.append((1, "forward", _run_one(function, options, oracle, notes, reproduce, extra, forward=True)))
    return shown(parts)


def _run_one(
    function: _Function, options: dict[str, Any], oracle: OracleName, notes: list[str], reproduce: str, extra: int,
    *, forward: bool = False,
) -> Report:
    options = dict(options)
    # Batched evaluation is the adapter's business: vmap where it is exact and pays, a loop elsewhere.
    wanted = options.pop("vectorized", None)
    if wanted is None:
        wanted = batches_pay(options.get("strategy", "auto"), sum(t.numel() for t in function.like.values()))
    vectorized = bool(wanted) and function.vmap_consistent(extra, reference=options.get("shadow") is not False)
    if oracle == "forward":
        function.require_forward_mode()
        options = {**options, "oracle": function.oracle()}
    note = describe_outputs(function.shapes, function.seed, function.complex_outputs)
    notes = [*notes, *([note] if note else []), *([FORWARD_NOTE] if forward else [])]
    loss = function.batched_loss if vectorized else function.loss
    with passes.on_torch_threads():  # the loss runs on them: see `_passes`
        report = check_contracted(loss, _Gradient(function, forward=forward), function.params(), notes, {**options, "vectorized": vectorized}, reproduce)
    report = without_held(report, {name: (int(mask.sum()), mask.numel()) for name, mask in function.held.items()})
    if report.reference != "float64":
        return report
    return replace(report, notes=(*report.notes, *_precision_notes(function)))


def _precision_notes(function: _Function) -> list[str]:
    """Under the float64 reference: which dtype's rounding was allowed for, when the gradient was
    computed in one coarser than every checked tensor's (autocast); and whether the reference itself
    computed in bfloat16 or float16 (an explicit cast: autocast leaves float64 alone)."""
    notes = []
    coarsest, own = function.computed_in, {t.dtype for t in function.like.values()}
    if coarsest is not None and all(float(np.finfo(coarsest).eps) > torch.finfo(d).eps for d in own):
        notes.append(
            f"the gradient under test was computed in {coarsest} (autocast, or a cast in the function) although the "
            f"checked tensors are {'/'.join(sorted(str(d).removeprefix('torch.') for d in own))}: the rounding "
            f"allowed for is {coarsest}'s (eps {float(np.finfo(coarsest).eps):.1e})."
        )
    coarse = sorted(str(d).removeprefix("torch.") for d in function.reference_dtypes & {torch.bfloat16, torch.float16})
    if coarse:
        notes.append(
            f"the float64 reference is not float64 throughout: on float64 inputs the function still computes in "
            f"{'/'.join(coarse)} (an explicit cast such as `.to(torch.{coarse[0]})`), so the numerical side differentiates that "
            "rounding too, a staircase whose derivative is zero; check the function without the cast."
        )
    return notes


def _require_oracle_name(oracle: Any) -> None:
    if oracle not in ("differences", "forward"):
        raise InvalidArgument(f"`oracle` must be 'differences' or 'forward', got {oracle!r}.", argument="oracle")


def check(fn: Callable[..., Any], *inputs: Any, oracle: OracleName = "differences", **options: Any) -> Report:
    """Check the autograd gradient of ``fn(*inputs)`` against error-barred numerical derivatives.

    The calling convention is ``torch.autograd.gradcheck``'s: any number of inputs, a tensor or a
    tuple of tensors as output. Tensors with ``requires_grad=True`` are checked; other inputs are
    passed through unchanged, and tensors among them are listed in the report's notes. A
    non-scalar output is checked through a random cotangent (its backward is the VJP ``J^T v``).

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> tensor or tuple of tensors``, e.g. ``MyFunction.apply``.
    *inputs
        Its inputs, in their own dtype (float32 works: no conversion to float64 needed) and on
        their own device (evaluation happens there). Never modified.
    oracle : {"differences", "forward"}
        Where numerical derivatives come from: finite differences with error bars, or exact
        directional derivatives from forward-mode AD (``torch.func.jvp``, batched with
        ``torch.func.vmap`` when the function allows it, else one at a time), which checks a
        custom backward with no finite-difference error at all.
    **options
        Keyword options of `gradprobe.check` (``seed``, ``rtol``, ``method``, ...).

    Returns
    -------
    Report
        One tensor per checked input, named after `fn`'s parameters (``x``, ``W``) when it has
        named ones, else ``input0``, ``input1``...

    Examples
    --------
    >>> import torch, gradprobe as gp
    >>> x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    >>> gp.torch.check(torch.sin, x).status
    'pass'
    """
    if not callable(fn):
        raise InvalidArgument(f"`fn` must be callable, got {type(fn).__name__}.", argument="fn")
    _require_oracle_name(oracle)
    require_known_options(options, "gp.torch.check", ("order", "mode"))
    require_derivative(options.get("order", 1), options.get("mode", "reverse"), oracle)
    refuse_process_pools(options, "gp.torch.check")
    names = _input_names(fn, len(inputs))
    checked: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for name, value in zip(names, inputs):
        if isinstance(value, torch.Tensor) and value.requires_grad:
            _require_checked_dtype(value, name, "inputs")
            checked[name] = value
        elif isinstance(value, torch.Tensor):
            why = "requires_grad=False" if value.is_floating_point() or value.is_complex() else f"dtype {value.dtype}"
            skipped.append(f"`{name}` ({why})")
    if not checked:
        # Say what was passed: a numpy array or a dict of tensors has no `.requires_grad_()` to call.
        others = [f"`{name}` ({type(value).__module__.split('.')[0]}.{type(value).__name__})" for name, value in
                  zip(names, inputs) if not isinstance(value, torch.Tensor)]  # fmt: skip
        passed = f" (not tensors: {', '.join(others)})" if others else ""
        raise InvalidValue(
            f"no tensor in `inputs` requires grad{passed}, so there is nothing to check. gp.torch.check takes the "
            "tensors to check as separate arguments, as torch.autograd.gradcheck does: `torch.tensor(...)` for an "
            "array, `.requires_grad_()` on each tensor whose gradient you want checked, and a dict `d` of tensors as "
            "`gp.torch.check(lambda *t: fn(dict(zip(d, t))), *d.values())`.",
            argument="inputs",
        )

    def call(tensors: dict[str, torch.Tensor]) -> Any:
        # The float64 reference casts the other inputs; the checked ones are replaced, not cast.
        wide = _widened(tensors, checked)
        return fn(*(tensors[name] if name in tensors else _upcast(a) if wide else a for name, a in zip(names, inputs)))

    notes = [f"inputs not checked: {', '.join(skipped)}."] if skipped else []
    function = _Function(call, checked, "fn", cotangent_seed(options), "inputs")
    others = [t.numel() for t in inputs if isinstance(t, torch.Tensor)]
    return _run(function, options, oracle, notes, "gp.torch.check(fn, *inputs", max(others, default=0))


# -- modules ---------------------------------------------------------------------------------------


def _random_layers(module: torch.nn.Module) -> list[str]:
    """Submodules whose training mode makes the loss random or batch-dependent."""
    def random(m: torch.nn.Module) -> bool:
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            return m.p > 0  # dropout with p = 0 changes nothing
        return isinstance(m, torch.nn.modules.batchnorm._BatchNorm)

    return [name or type(m).__name__ for name, m in module.named_modules() if m.training and random(m)]


@contextmanager
def _restored(module: torch.nn.Module) -> Iterator[None]:
    """Put every parameter and buffer back, bit for bit and as the same object, whatever happens."""
    saved = []
    for kind in ("_parameters", "_buffers"):
        for owner in module.modules():
            for key, tensor in getattr(owner, kind).items():
                if tensor is not None:
                    saved.append((owner, kind, key, tensor, tensor.detach().clone(), tensor.requires_grad))
    try:
        yield
    finally:
        for owner, kind, key, tensor, copy, requires_grad in saved:
            getattr(owner, kind)[key] = tensor
            now, before = tensor.detach(), copy
            if copy.is_complex():  # signbit has no complex form: compare the parts
                now, before = torch.view_as_real(now), torch.view_as_real(before)
            same = torch.equal(now, before) and torch.equal(torch.signbit(now), torch.signbit(before))
            if not same:
                with torch.no_grad():
                    tensor.copy_(copy)  # only on change: a copy bumps the version counter autograd watches
            if tensor.requires_grad != requires_grad and tensor.is_leaf:
                tensor.requires_grad_(requires_grad)


def check_module(
    module: torch.nn.Module,
    loss_fn: Callable[..., Any],
    *batch: Any,
    oracle: OracleName = "differences",
    **options: Any,
) -> Report:
    """Check the gradients of every trainable parameter of `module` on one batch.

    The loss is ``loss_fn(module(batch[0]), *batch[1:])``, the PyTorch idiom
    ``loss_fn(model(X), y)``: ``check_module(model, torch.nn.CrossEntropyLoss(), X, y)``.
    The module is evaluated with `torch.func.functional_call`, so its own parameters and
    buffers are never written; they are also restored bit for bit afterwards, in case
    `loss_fn` touches them, even when it raises.

    Parameters
    ----------
    module : torch.nn.Module
        The model. Parameters with ``requires_grad=False`` are not checked (listed in a note).
    loss_fn : callable
        ``loss_fn(output, *targets) -> tensor``; a non-scalar result is checked through a
        random cotangent.
    *batch
        The module's input, then whatever else `loss_fn` takes.
    oracle : {"differences", "forward"}
        As in `check`.
    **options
        Keyword options of `gradprobe.check`.

    Returns
    -------
    Report
        One tensor per parameter, named as in ``module.named_parameters()`` (``layers.0.weight``).

    Warns
    -----
    UserWarning
        When the module is in train mode with dropout or batch-norm layers: torch's RNG is
        re-seeded before each evaluation (the same dropout masks every time) and batch norm
        uses this batch's statistics, so the training-mode loss on this batch is what is checked;
        any randomness left is measured by the non-determinism check and noted.

    Examples
    --------
    >>> import torch, gradprobe as gp
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    >>> report = gp.torch.check_module(net, torch.nn.MSELoss(), torch.randn(5, 3), torch.randn(5, 1))
    >>> report.status, list(report.tensors)[:2]
    ('pass', ['0.weight', '0.bias'])
    """
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgument(
            f"`module` must be a torch.nn.Module, got {type(module).__name__}; for a plain function use "
            "`gp.torch.check(fn, *inputs)`.",
            argument="module",
        )
    if not callable(loss_fn):
        raise InvalidArgument(f"`loss_fn` must be callable, got {type(loss_fn).__name__}.", argument="loss_fn")
    _require_oracle_name(oracle)
    require_known_options(options, "gp.torch.check_module", ("order", "mode"))
    require_derivative(options.get("order", 1), options.get("mode", "reverse"), oracle)
    refuse_process_pools(options, "gp.torch.check_module")
    trainable = {name: p for name, p in module.named_parameters() if p.requires_grad}
    frozen = [name for name, p in module.named_parameters() if not p.requires_grad]
    if not trainable:
        raise InvalidValue(
            "`module` has no parameter with requires_grad=True, so there is nothing to check.", argument="module"
        )
    for name, p in trainable.items():
        _require_checked_dtype(p, name, "module")
    notes = [f"parameters not checked (requires_grad=False): {', '.join(frozen)}."] if frozen else []
    random_layers = _random_layers(module)
    if random_layers:
        message = (
            f"`module` is in train mode with dropout/batch-norm layers ({', '.join(random_layers)}): dropout masks "
            "are held fixed (torch's RNG is re-seeded before each evaluation) and batch norm uses this batch's "
            "statistics, so this checks the training-mode loss on this batch. Call `module.eval()` to check "
            "inference-mode gradients."
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        notes.append(message)
    inputs, targets = batch[:1], batch[1:]

    def call(tensors: dict[str, torch.Tensor]) -> Any:
        # Fresh buffers each time: batch norm's running statistics must not drift between evaluations.
        buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
        # The module's own errors (a batch of the wrong shape) are the module's, not `loss_fn`'s.
        if not _widened(tensors, trainable):
            output = _user_call(
                torch.func.functional_call, "module", module, {**buffers, **tensors}, tuple(inputs), where="on batch[0]"
            )
            return loss_fn(output, *targets)
        # The float64 reference: a float64 copy of everything the module and the loss meet.
        others = {name: p for name, p in module.named_parameters() if name not in tensors}  # the checked ones are replaced
        state = {**_upcast(buffers), **_upcast(others), **tensors}
        output = _user_call(
            torch.func.functional_call, "module", module, state, tuple(_upcast(list(inputs))), where="on batch[0]"
        )
        return loss_fn(output, *_upcast(list(targets)))

    with _restored(module):
        function = _Function(
            call, {name: p.detach() for name, p in trainable.items()}, "loss_fn", cotangent_seed(options), "module", writable=True
        )
        function.backward_is = ("module", "in the backward through it and `loss_fn`")
        widest = max([t.numel() for t in batch if isinstance(t, torch.Tensor)], default=0)
        return _run(function, options, oracle, notes, "gp.torch.check_module(module, loss_fn, *batch", widest)


# -- assertion -------------------------------------------------------------------------------------


def assert_gradients(fn: Callable[..., Any], *inputs: Any, allow_inconclusive: bool = False, **options: Any) -> Report:
    """Check ``fn``'s autograd gradient like `check` does, and raise `GradientMismatch` unless it passes.

    The exception's message is the whole readable report (diagnosis, worst elements, hint and a
    line that reproduces the check); its `report` attribute is the `Report`. In pytest the
    traceback stops at the test's own line.

    Parameters
    ----------
    fn, *inputs
        As for `check`.
    allow_inconclusive : bool
        Return instead of raising when the check could not decide (a point on a kink, a noisy
        function). By default an undecided check fails the assertion, as it proves nothing.
    **options
        Any keyword option of `check` (``oracle``, ``seed``, ``rtol``...).

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
    >>> import torch, gradprobe as gp
    >>> x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    >>> gp.torch.assert_gradients(torch.sin, x).status
    'pass'
    """
    __tracebackhide__ = True
    return assert_passes(lambda: check(fn, *inputs, **options), allow_inconclusive)
