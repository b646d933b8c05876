"""Match a gradient structure to a parameter structure and flatten it.

The gradient must mirror the parameters. Dict entries are found under the parameter's own key
or, following the deeplearning.ai convention, under ``"d" + key`` (``dW1`` for ``W1``). Extra dict
entries that match no parameter (``dZ3``, ``dA2`` ...) are ignored and named in the report.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import permutations
from typing import Any

import numpy as np

from .. import _passes as passes
from .._errors import InvalidArgument, InvalidValue
from ._complex import gradient_parts
from ._params import Leaf, Params, _framework_hint, all_finite


def _gradient_keys(key: Any) -> tuple[Any, ...]:
    return (key, "d" + key) if isinstance(key, str) else (key,)


def _lookup(node: Any, key: Any, where: str, argument: str) -> tuple[Any, Any]:
    """Find the gradient entry for parameter `key` inside the gradient node `node`."""
    if isinstance(key, int) and not isinstance(node, Mapping):
        # An array stacked along its first axis stands for a list of its rows (a list of floats
        # and the array of their gradients, the most common case).
        if isinstance(node, np.ndarray) and node.ndim >= 1:
            return node[key], key
        if not isinstance(node, (list, tuple)):
            raise InvalidArgument(
                f"`{argument}` returned {type(node).__name__} at `{where or 'top level'}` where the parameters have "
                "a list/tuple; return the same structure as `params`.",
                argument=argument,
            )
        if not -len(node) <= key < len(node):
            raise InvalidArgument(
                f"`{argument}` returned {len(node)} entries at `{where or 'top level'}` where the parameters have "
                f"an entry `{key}`; return the same structure as `params`.",
                argument=argument,
            )
        return node[key], key
    if not isinstance(node, Mapping):
        raise InvalidArgument(
            f"`{argument}` returned {type(node).__name__} at `{where or 'top level'}` where the parameters have a dict; "
            "return the same structure as `params`.",
            argument=argument,
        )
    for candidate in _gradient_keys(key):
        if candidate in node:
            return node[candidate], candidate
    expected = " or ".join(f"`{k}`" for k in _gradient_keys(key))
    raise InvalidArgument(
        f"`{argument}` returned no gradient for parameter `{_join(where, key)}`: expected key "
        f"{expected}, got keys {sorted(map(str, node))}. Return a gradient for every parameter.",
        argument=argument,
    )


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _check_lengths(node: Any, expected: int, where: str, argument: str) -> None:
    sized = isinstance(node, (list, tuple)) or (isinstance(node, np.ndarray) and node.ndim >= 1)
    if sized and len(node) != expected:
        raise InvalidArgument(
            f"`{argument}` returned {len(node)} entries at `{where or 'top level'}` where the "
            f"parameters have {expected}; return one gradient per parameter.",
            argument=argument,
        )


def _leaf_gradient(value: Any, leaf: Leaf, argument: str) -> np.ndarray:
    hint = _framework_hint(value)
    if hint is not None:
        raise InvalidArgument(f"`{argument}` entry for `{leaf.name}` is {hint}.", argument=argument)
    if value is None:
        raise InvalidArgument(
            f"`{argument}` returned None for parameter `{leaf.name}`; return its gradient (zeros if "
            "the loss truly does not depend on it).",
            argument=argument,
        )
    if isinstance(value, (Mapping, Iterator)) or isinstance(value, (str, bytes)):
        fix = f"return an array of shape {leaf.shape}"
        if isinstance(value, Iterator):
            what, fix = "an iterator (a generator?)", fix + " (wrap a generator: `np.array(list(...))`)"
        else:
            what = f"a {type(value).__name__}"
        raise InvalidArgument(f"`{argument}` entry for `{leaf.name}` is {what}; {fix}.", argument=argument)
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and other oddities
        raise InvalidArgument(
            f"`{argument}` entry for `{leaf.name}` cannot be read as an array ({error}).",
            argument=argument,
        ) from None
    if np.iscomplexobj(array) and not leaf.complex:
        raise InvalidArgument(
            f"`{argument}` entry for `{leaf.name}` is complex ({array.dtype}) but the parameter is real; the gradient "
            "of a real loss with respect to a real parameter is real: return a real array.",
            argument=argument,
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise InvalidArgument(
            f"`{argument}` entry for `{leaf.name}` has dtype {array.dtype}; return a "
            f"{'complex' if leaf.complex else 'float'} array.",
            argument=argument,
        )
    shape = leaf.tensor_shape
    if array.shape != shape and not (shape == () and array.size == 1):
        hint = _permuted(array.shape, shape)
        raise InvalidArgument(
            f"`{argument}` entry for `{leaf.name}` has shape {array.shape} but the parameter has shape "
            f"{shape}{hint}; return a gradient of the parameter's shape.",
            argument=argument,
        )
    values = np.asarray(array, dtype=np.complex128 if leaf.complex else np.float64).ravel()
    if not all_finite(values):
        raise InvalidValue(
            f"`{argument}` returned NaN or inf for `{leaf.name}` {nonfinite_elements(values, shape)}; fix the "
            "gradient's formula (or its overflow) first.",
            argument=argument,
        )
    # A complex parameter's gradient (PyTorch's convention) as the parts the numerical side measures.
    return gradient_parts(values).ravel() if leaf.complex else values


def _permuted(shape: tuple[int, ...], wanted: tuple[int, ...]) -> str:
    """" (transposed?)" or " (the parameter's axes in the order (0, 2, 1)?)" when `shape` is
    `wanted` with its axes reordered, naming the orders that fit (at most three); else ""."""
    if len(shape) != len(wanted) or len(shape) < 2 or sorted(shape) != sorted(wanted):
        return ""
    if len(shape) == 2:
        return " (transposed?)"
    orders = [o for o in permutations(range(len(wanted))) if tuple(wanted[i] for i in o) == shape]
    named = " or ".join(str(o) for o in orders[:3])
    back = tuple(int(i) for i in np.argsort(orders[0]))
    return f" (the parameter's axes in the order {named}? for the first, `g.transpose({back})` puts them back)"


#: Elements a NaN/inf error names at most.
NAMED_ELEMENTS = 5


def nonfinite_elements(values: np.ndarray, shape: tuple[int, ...]) -> str:
    """Where the flat `values` of a tensor of `shape` are NaN or inf: ``"at 2 of its 12 elements:
    (0, 1) NaN, (2, 3) inf"`` (the first few)."""
    bad = np.flatnonzero(~np.isfinite(values))
    named = ", ".join(
        f"{tuple(int(i) for i in np.unravel_index(k, shape))} {'NaN' if np.isnan(values[k]) else 'inf'}"
        for k in bad[:NAMED_ELEMENTS]
    )
    more = ", ..." if len(bad) > NAMED_ELEMENTS else ""
    return f"at {len(bad)} of its {values.size} element(s): {named}{more}"


def flatten_gradient(
    params: Params, gradient: Any, *, argument: str = "grad", out: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Flatten `gradient` in the order of `params` (into `out`, of the parameters' size, if given).

    Returns the flat float64 gradient and the names of gradient entries that match no parameter.
    """
    flat = np.empty(params.size) if out is None else out
    used: set[tuple[Any, ...]] = set()
    for leaf in params.leaves:
        node, real_path, where = gradient, (), ""
        for depth, key in enumerate(leaf.path):
            if isinstance(key, int):
                siblings = _sibling_count(params, leaf.path[:depth])
                _check_lengths(node, siblings, where, argument)
            node, found = _lookup(node, key, where, argument)
            real_path += (found,)
            where = _join(where, found)
        if not leaf.path and isinstance(node, (Mapping, list, tuple)) and not _is_array_like(node):
            raise InvalidArgument(
                f"`{argument}` returned a {type(node).__name__} but `params` is a single "
                "array/float; return one gradient array of the same shape.",
                argument=argument,
            )
        passes.copy(_leaf_gradient(node, leaf, argument), out=flat[leaf.slice])
        used.update(real_path[:i] for i in range(len(real_path) + 1))
    return flat, tuple(_unused(gradient, (), used))


def _is_array_like(node: Any) -> bool:
    """A (nested) list/tuple of numbers: an array written as lists, ragged or not."""
    if isinstance(node, (list, tuple)):
        return all(_is_array_like(x) for x in node)
    return isinstance(node, (int, float, np.number))


def _sibling_count(params: Params, prefix: tuple[Any, ...]) -> int:
    """Entries of the parameters' container at `prefix`, counting those without arrays (`[[], x]`)."""
    node = params.tree
    for key in prefix:
        node = node[key]
    return len(node)


def _unused(node: Any, path: tuple[Any, ...], used: set[tuple[Any, ...]]):
    """Names of dict entries in the gradient that no parameter claimed."""
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        child = path + (key,)
        if child not in used:
            yield ".".join(str(p) for p in child)
        else:
            yield from _unused(value, child, used)
