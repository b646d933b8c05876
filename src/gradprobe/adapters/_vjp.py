"""Vector-valued functions: check a VJP or a Jacobian through a random cotangent.

A vector-Jacobian product ``vjp(x, v) = J(x)^T v`` is the gradient of the scalar
``L(x) = <v, f(x)>``. Checking that gradient with `gradprobe.check` checks the VJP: every input
element of ``J^T v`` gets its own error-barred verdict. A VJP that is wrong by a linear map
``E != 0`` shows the error ``E v``, which vanishes only for cotangents in a set of probability zero,
so one Gaussian cotangent suffices; a scalar output gets the cotangent 1, so its gradient is
reported as itself.

The framework adapters (`gradprobe.torch`, `gradprobe.jax`) use the same cotangents and the same
`check_contracted` step; only the contraction ``<v, f(x)>`` runs in the framework, on its device.

A complex output ``y`` gets a complex cotangent (real and imaginary parts independent standard
normals) and the real loss ``L = Re <v, y> = Re sum(conj(v) * y) = sum(Re v Re y + Im v Im y)``.
Each framework's own VJP is then the gradient of ``L`` in its own convention (`params._complex`):
PyTorch's backward receives ``v`` (``torch.autograd.grad(y, x, v)``), JAX's VJP takes
``conj(v)`` (``jax.vjp(f, x)[1](v.conj())``), and `check_vjp`'s ``vjp(x, v)`` must return what
PyTorch does: for a holomorphic ``f``, ``conj(f'(x)) * v``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..strategies._check import check
from .._errors import InvalidArgument, InvalidValue
from ..params._matching import flatten_gradient, nonfinite_elements
from ..params._params import Params, all_finite
from ..estimate._calling import call_user as _call
from ..estimate._executor import ships_tasks
from ..estimate._objective import require_callable
from ..params._complex import PART_DTYPES
from ..report._types import Report

# Keeps the cotangent's random stream apart from the check's own (both derive from `seed`).
_COTANGENT_STREAM = 0x7640


def cotangent_seed(options: dict[str, Any]) -> int:
    """The seed for the cotangent: the check's `seed` when valid (else `check` rejects it later)."""
    seed = options.get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


def random_cotangents(shapes: list[tuple[int, ...]], seed: int, complex_outputs: Sequence[bool] = ()) -> list[np.ndarray]:
    """One standard-normal float64 cotangent per output shape; a lone scalar output gets 1. The
    outputs flagged in `complex_outputs` get a complex128 one (both parts standard normal).

    Examples
    --------
    >>> [v.shape for v in random_cotangents([(2, 3), ()], seed=0)]
    [(2, 3), ()]
    >>> random_cotangents([()], seed=0)[0]
    array(1.)
    """
    if sum(int(np.prod(s, dtype=np.int64)) for s in shapes) == 1:
        return [np.ones(s) for s in shapes]
    rng = np.random.default_rng([seed, _COTANGENT_STREAM])
    flags = list(complex_outputs) + [False] * (len(shapes) - len(complex_outputs))
    return [rng.standard_normal(s) + 1j * rng.standard_normal(s) if c else rng.standard_normal(s) for s, c in zip(shapes, flags)]


def describe_outputs(shapes: list[tuple[int, ...]], seed: int, complex_outputs: Sequence[bool] = ()) -> str | None:
    """The report note saying which cotangent the check went through (None for a real scalar output)."""
    scalar = sum(int(np.prod(s, dtype=np.int64)) for s in shapes) == 1
    if any(complex_outputs):
        if scalar:
            return "complex output: the loss is its real part, Re f(x), and the gradient checked is that of Re f."
        listed = ", ".join(str(s) for s in shapes)
        return (
            f"complex output {listed} checked through a random complex Gaussian cotangent v (seed {seed}): the loss is "
            "Re <v, f(x)> = sum(Re v Re f + Im v Im f), the gradient is its VJP (torch: autograd.grad(f(x), x, v); "
            "JAX: vjp(conj(v)))."
        )
    if scalar:
        return None
    listed = ", ".join(str(s) for s in shapes)
    return (
        f"vector output {listed} checked through a random Gaussian cotangent v (seed {seed}): "
        "the loss is <v, f(x)>, the gradient is the VJP J^T v."
    )


def contract(v: np.ndarray, y: np.ndarray) -> float:
    """``Re <v, y>`` in float64: ``sum(v * y)`` for a real output, ``sum(Re v Re y + Im v Im y)`` for a complex one."""
    if np.iscomplexobj(y) or np.iscomplexobj(v):
        return float(np.sum(np.real(np.conj(v) * np.asarray(y, dtype=np.complex128))))
    return float(np.sum(v * np.asarray(y, dtype=np.float64)))


def call_line(head: str, options: dict[str, Any]) -> str:
    """The line that repeats a check: ``head`` plus its plain keyword options, the seed always.

    Examples
    --------
    >>> call_line("gp.torch.check(fn, *inputs", {"rtol": 1e-3, "oracle": "forward", "executor": object()})
    "gp.torch.check(fn, *inputs, rtol=0.001, oracle='forward', seed=0)"
    """
    plain = {k: v for k, v in options.items() if v is None or isinstance(v, (bool, int, float, str, tuple))}
    plain.setdefault("seed", 0)
    return ", ".join([head, *(f"{k}={v!r}" for k, v in plain.items())]) + ")"


def require_known_options(options: dict[str, Any], entry: str, extra: tuple[str, ...] = ()) -> None:
    """Every keyword in `options` is one `entry` takes (`gradprobe.check`'s options, and `extra`),
    or an error naming it, before any work (not a TypeError about an inner function)."""
    known = [name for name in inspect.signature(check).parameters if name not in ("loss", "grad", "params")]
    for name in options:
        if name not in known and name not in extra:
            raise InvalidArgument(
                f"`{name}` is not an option of {entry}; it takes {', '.join(sorted([*known, *extra]))}.",
                argument=name,
            )


def refuse_process_pools(options: dict[str, Any], entry: str) -> None:
    """Before any work: a framework's function is evaluated in this process (its tensors, modules and
    closures do not travel to workers), so an `executor` of other processes cannot run it."""
    executor = options.get("executor")
    if ships_tasks(executor):
        raise InvalidArgument(
            f"`executor` ({type(executor).__name__}) runs the loss in other processes, but {entry} evaluates your "
            "function in this one: its tensors, modules and closures do not travel to workers. Leave `executor` out "
            "(evaluations are batched with vmap where it is exact), or pass a ThreadPoolExecutor.",
            argument="executor",
        )


def check_contracted(
    loss: Callable[[Any], Any],
    grad: Callable[[Any], Any],
    params: Any,
    notes: list[str],
    options: dict[str, Any],
    reproduce: str,
) -> Report:
    """`gradprobe.check` of a contracted loss, with `notes` put in front of the report's own and
    `reproduce` as the line that repeats the check (the entry point the user called, not gp.check)."""
    report = check(loss, grad, params, **options)
    return replace(_reproduced_by(report, reproduce), notes=(*notes, *report.notes))


def _reproduced_by(report: Report, reproduce: str) -> Report:
    """`report`, and the reports inside it (the nearby point's, each point's), with `reproduce` as
    the line that repeats the check: the call that made them all."""
    return replace(
        report,
        options={**report.options, "reproduce": reproduce},
        nearby=None if report.nearby is None else _reproduced_by(report.nearby, reproduce),
        points=tuple(_reproduced_by(point, reproduce) for point in report.points),
    )


def _paths(tree: Any, path: tuple[Any, ...] = ()):
    """(path, leaf) pairs of an output structure, in the order `_rebuild_like` consumes them."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, path + (key,))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _paths(value, path + (i,))
    else:
        yield path, tree


def _output_leaves(output: Any, argument: str) -> list[tuple[tuple[Any, ...], np.ndarray]]:
    leaves = []
    for path, value in _paths(output):
        try:
            array = np.asarray(value)
        except Exception as error:
            raise InvalidArgument(f"`{argument}` returned an output that is not an array ({error}).", argument=argument)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number) or array.dtype.kind == "c" and array.dtype not in PART_DTYPES:
            raise InvalidArgument(
                f"`{argument}` returned {type(value).__name__} of dtype {array.dtype} at output "
                f"`{'.'.join(map(str, path)) or 'output'}`; return float or complex64/complex128 arrays (or a dict/list/tuple of them).",
                argument=argument,
            )
        leaves.append((path, array))
    return leaves




def check_vjp(f: Callable[[Any], Any], vjp: Callable[[Any, Any], Any], x: Any, **options: Any) -> Report:
    """Check a vector-Jacobian product of a vector-valued function at `x`.

    Parameters
    ----------
    f : callable
        ``f(x) -> output``: a float, an array, or a dict/list/tuple of arrays.
    vjp : callable
        ``vjp(x, v) -> J(x)^T v``, with the structure of `x`. ``v`` has the structure of the
        output, each entry in its output's dtype. For a complex output the loss is ``Re <v, f(x)>``
        and `vjp` returns its gradient in PyTorch's convention, what
        ``torch.autograd.grad(f(x), x, v)`` returns (``conj(f'(x)) * v`` for a holomorphic `f`).
    x : float, array, or nested dict/list/tuple of arrays
        The point to check at. Never modified.
    **options
        Keyword options of `gradprobe.check` (``seed``, ``rtol``, ``method``...). ``seed`` also
        picks the random cotangent.

    Returns
    -------
    Report
        The verdict on ``J^T v`` per element of `x`; a note names the cotangent used.

    Examples
    --------
    >>> import numpy as np, gradprobe as gp
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> gp.check_vjp(lambda x: A @ np.sin(x), lambda x, v: np.cos(x) * (A.T @ v), np.array([0.1, 0.2])).status
    'pass'
    >>> gp.check_vjp(lambda x: A @ np.sin(x), lambda x, v: A.T @ v, np.array([0.1, 0.2])).failing  # cos(x) forgotten
    ('x',)
    """
    require_callable(f, "f")
    require_callable(vjp, "vjp", "lambda x, v: ...")
    require_known_options(options, "gp.check_vjp")
    return _check_vjp(f, vjp, x, options, call_line("gp.check_vjp(f, vjp, x", options))


def check_hvp(grad: Callable[[Any], Any], hvp: Callable[[Any, Any], Any], params: Any, **options: Any) -> Report:
    """Check a Hessian-vector product against numerical differences of the gradient.

    The Hessian is the Jacobian of `grad`, and symmetric, so ``hvp(params, v) = H v = H^T v`` is
    the VJP of `grad`: it is checked as `check_vjp` checks one, along a random `v`, element by
    element of its result. (`grad` is the reference here: check it first with `gradprobe.check`.)

    Parameters
    ----------
    grad : callable
        ``grad(params) -> gradient`` in the structure of `params` (as for `gradprobe.check`).
    hvp : callable
        ``hvp(params, v) -> H(params) v`` in the structure of `params`; ``v`` has the structure
        of `grad`'s result.
    params : float, array, or nested dict/list/tuple of arrays
        The point to check at. Never modified.
    **options
        Keyword options of `gradprobe.check`; ``seed`` also picks `v`.

    Examples
    --------
    >>> import numpy as np, gradprobe as gp
    >>> grad = lambda x: 4 * x**3                     # of sum(x**4)
    >>> gp.check_hvp(grad, lambda x, v: 12 * x**2 * v, np.array([0.5, -1.0, 2.0])).status
    'pass'
    >>> gp.check_hvp(grad, lambda x, v: 12 * x * v, np.array([0.5, -1.0, 2.0])).failing  # x for x**2
    ('params',)
    """
    require_callable(grad, "grad")
    require_callable(hvp, "hvp", "lambda params, v: ...")
    require_known_options(options, "gp.check_hvp")
    return _check_vjp(grad, hvp, params, options, call_line("gp.check_hvp(grad, hvp, params", options),
                      ("grad", "hvp", "params"), _describe_hvp)  # fmt: skip


def _describe_hvp(shapes: list[tuple[int, ...]], seed: int) -> str:
    return f"checked along a random Gaussian v (seed {seed}): the loss is <v, grad(params)>, its gradient H v."


def _check_vjp(
    f: Callable[[Any], Any], vjp: Callable[[Any, Any], Any], x: Any, options: dict[str, Any], reproduce: str,
    names: tuple[str, str, str] = ("f", "vjp", "x"),
    describe: Callable[[list[tuple[int, ...]], int], str | None] = describe_outputs,
) -> Report:
    """`check_vjp`'s work; `names` are what the user called `f`, `vjp` and `x` (for the errors), and
    `describe` says in a note which cotangent the check went through."""
    f_name, vjp_name, x_name = names
    start = Params(x, argument=x_name, root="x")
    # A bare array or float is checked as {x_name: x}, so that the report calls it as the user did
    # (`x` for check_vjp, `params` for check_hvp, as gp.check does).
    bare = len(start.leaves) == 1 and not start.leaves[0].path
    params = {x_name: x} if bare else x

    def unwrap(point: Any) -> Any:
        return point[x_name] if bare else point

    output = _call(f, f_name, start.copy())
    leaves = _output_leaves(output, f_name)
    if not all(np.all(np.isfinite(array)) for _, array in leaves):
        raise InvalidValue(
            f"`{f_name}` returned NaN or inf at `{x_name}`; a VJP can only be checked where the output is finite.",
            argument=f_name,
        )
    shapes = [array.shape for _, array in leaves]
    dtypes = [array.dtype if array.dtype.kind in "fc" else np.dtype(np.float64) for _, array in leaves]
    complex_outputs = [d.kind == "c" for d in dtypes]
    seed = cotangent_seed(options)
    # Rounded to each output's dtype, so that the loss and `vjp` see the very same v.
    cotangents = [v.astype(d).astype(np.complex128 if d.kind == "c" else np.float64)
                  for v, d in zip(random_cotangents(shapes, seed, complex_outputs), dtypes)]  # fmt: skip

    def loss(point: Any) -> float:
        outputs = _output_leaves(_call(f, f_name, unwrap(point)), f_name)
        if [a.shape for _, a in outputs] != shapes:
            raise InvalidArgument(
                f"`{f_name}` returned outputs of shapes {[a.shape for _, a in outputs]} here but {shapes} at "
                f"`{x_name}`; the output structure must not depend on the point.",
                argument=f_name,
            )
        return float(sum(contract(v, a) for v, (_, a) in zip(cotangents, outputs)))

    def grad(point: Any) -> Any:
        # A fresh cotangent each call: a vjp that scales `v` in place must not change the next one.
        tree = _call(vjp, vjp_name, unwrap(point), _rebuild_like(output, cotangents, dtypes))
        flatten_gradient(start, tree, argument=vjp_name)  # errors name `vjp`, not gp.check's `grad`
        return {x_name: tree} if bare else tree

    if describe is describe_outputs:  # a complex output's note says how it is made real
        describe = functools.partial(describe_outputs, complex_outputs=complex_outputs)
    note = describe(shapes, seed)
    return check_contracted(loss, grad, params, [note] if note else [], options, reproduce)


def _rebuild_like(output: Any, values: list[np.ndarray], dtypes: list[np.dtype]) -> Any:
    """The cotangent in the structure of `output`, each leaf in its output's float dtype."""
    leaves = iter(zip(values, dtypes))

    def rebuild(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: rebuild(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            items = [rebuild(value) for value in node]
            if isinstance(node, list):
                return items
            return type(node)(*items) if hasattr(node, "_fields") else type(node)(items)
        value, dtype = next(leaves)
        array = value.astype(dtype)
        return array[()] if array.ndim == 0 and not isinstance(node, np.ndarray) else array

    return rebuild(output)


def check_jacobian(f: Callable[[Any], Any], jac: Callable[[Any], Any], x: Any, **options: Any) -> Report:
    """Check a Jacobian ``jac(x)`` of an array-valued ``f(x)`` of one array (or float) `x`.

    The Jacobian has shape ``f(x).shape + x.shape`` (the convention of ``jax.jacobian`` and
    ``torch.autograd.functional.jacobian``). It is checked as the VJP ``v -> J^T v``
    through a random cotangent, so the verdict is per element of `x`.

    Examples
    --------
    >>> import numpy as np, gradprobe as gp
    >>> f = lambda x: np.array([x[0] * x[1], np.sin(x[0])])
    >>> jac = lambda x: np.array([[x[1], x[0]], [np.cos(x[0]), 0.0]])
    >>> gp.check_jacobian(f, jac, np.array([0.5, 2.0])).status
    'pass'
    >>> gp.check_jacobian(f, lambda x: jac(x).T, np.array([0.5, 2.0])).status
    'fail'
    """
    require_callable(f, "f")
    require_callable(jac, "jac", "lambda x: ...")
    require_known_options(options, "gp.check_jacobian")
    start = Params(x, argument="x", root="x")
    if len(start.leaves) != 1 or start.leaves[0].path:
        raise InvalidArgument(
            "`x` must be one array or float for `check_jacobian`; for a dict/list of arrays use "
            "`gp.check_vjp(f, vjp, x)`.",
            argument="x",
        )
    x_shape = start.leaves[0].shape
    out = _call(f, "f", start.copy())
    out_shape = np.shape(out)
    for argument, complex_ in (("x", start.leaves[0].complex), ("f", np.iscomplexobj(out))):
        if complex_:  # a real Jacobian has no room for a non-holomorphic function's two derivatives
            raise InvalidArgument(
                f"`{argument}` is complex; `check_jacobian` checks real functions of real arrays. Check a complex "
                "function's VJP with `gp.check_vjp(f, vjp, x)` (its `vjp(x, v)` returns what "
                "torch.autograd.grad(f(x), x, v) does).",
                argument=argument,
            )

    def vjp(point: Any, v: Any) -> np.ndarray:
        jacobian = np.asarray(_call(jac, "jac", point), dtype=np.float64)
        if jacobian.shape != out_shape + x_shape:
            raise InvalidArgument(
                f"`jac` returned shape {jacobian.shape}; expected f(x).shape + x.shape = {out_shape + x_shape}. "
                "Return d f[i] / d x[j] at [i, j].",
                argument="jac",
            )
        return np.tensordot(np.asarray(v, dtype=np.float64), jacobian, axes=len(out_shape))

    return _check_vjp(f, vjp, x, options, call_line("gp.check_jacobian(f, jac, x", options))


def without_held(report: Report, held: dict[str, tuple[int, int]]) -> Report:
    """The report with the held elements of each input (`held`: name -> (held count, size); NaN
    or inf at the point) taken out of what was covered: the loss never moved them, so their
    trivial agreement (0 against 0) is no finding."""
    if not held:
        return report
    tensors = dict(report.tensors)
    notes = []
    for name, (count, size) in held.items():
        tensor = tensors[name]
        counts = dict(tensor.counts)
        if sum(counts.values()) == size:  # every element probed: the held ones passed, 0 against 0
            counts["pass"] = counts.get("pass", 0) - count
        tensors[name] = replace(tensor, counts=counts, coverage=tensor.coverage * (size - count) / size)
        notes.append(
            f"`{name}`: {count} of its {size} elements are NaN or inf (a mask's -inf, say); they were held at those "
            "values at every point and are not checked: no derivative is defined there."
        )
    return replace(report, tensors=tensors, notes=(*report.notes, *notes))


def require_finite_gradient(gradient: dict[str, np.ndarray], argument: str, backward: str) -> None:
    """Raise naming the user's function (`argument`), the tensor and its elements when the gradient
    a framework computed through it (by its `backward`) holds NaN or inf."""
    for name, values in gradient.items():
        if not all_finite(values):
            flat = np.asarray(values, dtype=np.complex128 if np.iscomplexobj(values) else np.float64).ravel()
            raise InvalidValue(
                f"{backward} of `{argument}` gives NaN or inf for `{name}` {nonfinite_elements(flat, np.shape(values))}; "
                "fix the backward's formula (a custom rule's division by zero, log(0) or overflow) first.",
                argument=argument,
            )
