"""A read-only flat view over the user's parameter structure.

`Params` walks a float, an array, or nested dicts/lists/tuples of arrays once, records each
leaf's name, shape, dtype and offset in one flat float64 vector, and builds fresh copies of the
structure from flat vectors. It never writes to the user's objects: the loss always receives
new arrays.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _passes as passes
from .._errors import InvalidArgument, InvalidValue
from ._complex import PART_DTYPES, complex_dtype, element_positions, joined, parts, require_checked_complex

_SUPPORTED_FLOATS = (np.float16, np.float32, np.float64)
#: The numpy dtype of bfloat16 arrays (torch's and JAX's bfloat16 tensors, as the adapters pass them)
#: is ml_dtypes' `bfloat16`; numpy has none of its own.
_BFLOAT16 = "bfloat16"
_FRAMEWORK_HINTS = {
    "torch": "a torch tensor: use `gp.torch.check(fn, *inputs)` or convert with `.detach().cpu().numpy()`",
    "jax": "a JAX array: use `gp.jax.check(fn, *args)` or convert with `np.asarray(x)`",
    "jaxlib": "a JAX array: use `gp.jax.check(fn, *args)` or convert with `np.asarray(x)`",
}


@dataclass(frozen=True)
class Leaf:
    """One tensor of the structure: where it lives and how to rebuild it.

    `shape` and `dtype` are its layout in the flat vector: for a complex tensor (`complex`), its
    real and imaginary parts along a last axis of 2, in the parts' dtype (`_complex`);
    `tensor_shape` is the tensor's own shape.
    """

    name: str
    path: tuple[Any, ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    kind: str  # "array", "float" (a Python number) or "scalar" (a numpy scalar)
    complex: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # not np.prod: asked for thousands of times per check

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.size)

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        return self.shape[:-1] if self.complex else self.shape

    @property
    def tensor_dtype(self) -> np.dtype:
        return complex_dtype(self.dtype) if self.complex else self.dtype

    def index(self, flat_position: int) -> tuple[int, ...]:
        """The element's index inside this tensor (of `tensor_shape`), from its position in the flat vector."""
        position = (flat_position - self.offset) // (2 if self.complex else 1)  # a complex element's two parts
        return tuple(int(i) for i in np.unravel_index(position, self.tensor_shape))

    def elements(self, positions: np.ndarray) -> np.ndarray:
        """The flat positions in the tensor (of `tensor_shape`) of the elements that `positions` in
        its layout belong to: themselves, or each complex element once for its two parts."""
        return element_positions(positions) if self.complex else np.asarray(positions)

    def as_tensor(self, values: np.ndarray) -> np.ndarray:
        """`values` laid out like this leaf (after any leading axes) as the tensor the user's code
        gets: complex from its parts, for a complex leaf."""
        return joined(values) if self.complex else values


def _name(path: tuple[Any, ...], root: str) -> str:
    return ".".join(str(part) for part in path) if path else root


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    if isinstance(value, Iterator):
        return f"a {type(value).__name__} (an iterator: it would be used up by the first call; pass a list or an array)"
    return f"a {type(value).__name__}"


def _framework_hint(value: Any) -> str | None:
    return _FRAMEWORK_HINTS.get(type(value).__module__.split(".")[0])


def _as_leaf_array(value: Any, name: str, argument: str) -> tuple[np.ndarray, str]:
    """Validate one parameter leaf and return it as an array with its kind."""
    hint = _framework_hint(value)
    if hint is not None:
        raise InvalidArgument(f"`{argument}` entry `{name}` is {hint}.", argument=argument)
    if isinstance(value, bool) or isinstance(value, np.bool_):
        raise InvalidArgument(
            f"`{argument}` entry `{name}` is a bool; gradients need floating-point parameters. "
            "Pass a float instead.",
            argument=argument,
        )
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        kind = "scalar"
    elif isinstance(value, (int, float)):
        return np.asarray(float(value), dtype=np.float64), "float"
    elif isinstance(value, complex):
        return np.asarray(value, dtype=np.complex128), "float"
    elif isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
        raise InvalidArgument(
            f"`{argument}` entry `{name}` is a masked array with masked entries; the loss would receive "
            "plain arrays and lose the mask. Pass `x.filled(value)` or the unmasked data.",
            argument=argument,
        )
    elif isinstance(value, np.ndarray):
        kind = "array"
    else:
        raise InvalidArgument(
            f"`{argument}` entry `{name}` is {_describe(value)}; expected a float (or complex), a numpy array, "
            "or a dict/list/tuple of them.",
            argument=argument,
        )
    array = np.asarray(value)
    if np.iscomplexobj(array):
        require_checked_complex(array.dtype, name, argument)
    elif array.dtype.name == _BFLOAT16:
        _require_finfo(array.dtype, name, argument)
    elif array.dtype.type not in _SUPPORTED_FLOATS:
        raise InvalidArgument(
            f"`{argument}` entry `{name}` has dtype {array.dtype}; gradients need floating-point "
            f"parameters (float16, float32 or float64, ml_dtypes' bfloat16, or complex64 or complex128). Convert it "
            "with `.astype(np.float64)`.",
            argument=argument,
        )
    if array.size == 0:
        raise InvalidValue(
            f"`{argument}` entry `{name}` is empty (shape {array.shape}); there is nothing to check. "
            "Remove it from the structure.",
            argument=argument,
        )
    if not all_finite(array):
        raise InvalidValue(
            f"`{argument}` entry `{name}` holds NaN or inf; check the gradient at a finite point.",
            argument=argument,
        )
    return array, kind


def all_finite(values: np.ndarray) -> bool:
    """Whether every element of `values` is finite: their sum is, unless it overflows, in one
    pass that writes nothing (an elementwise test writes a mask of millions).

    Examples
    --------
    >>> all_finite(np.array([1.0, 2.0])), all_finite(np.array([1e308, 1e308])), all_finite(np.array([1.0, np.nan]))
    (True, True, False)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(values)):
            return True
    return bool(np.all(np.isfinite(values)))


def _require_finfo(dtype: np.dtype, name: str, argument: str) -> None:
    """Every stage reads a leaf's rounding from `np.finfo(leaf.dtype)`; ml_dtypes teaches numpy's
    `finfo` its bfloat16 from version 0.7 on (older versions only their own `ml_dtypes.finfo`)."""
    try:
        np.finfo(dtype)
    except ValueError:
        raise InvalidArgument(
            f"`{argument}` entry `{name}` has dtype {dtype}, which gradprobe checks with ml_dtypes 0.7 or later "
            "installed (it tells numpy's `finfo` about bfloat16); upgrade it with `pip install -U ml_dtypes`, "
            "or convert the entry with `.astype(np.float32)`.",
            argument=argument,
        ) from None


#: Deeper structures than this are almost surely a mistake (and would exhaust Python's stack).
MAX_DEPTH = 100


def _walk(tree: Any, argument: str, path: tuple[Any, ...] = (), enclosing: tuple[int, ...] = ()):
    """Yield (path, leaf) pairs in a fixed order: dict insertion order, list/tuple order."""
    if isinstance(tree, (Mapping, list, tuple)):
        if id(tree) in enclosing:
            raise InvalidArgument(
                f"`{argument}` contains itself at `{_name(path, argument)}`; pass a structure without cycles.",
                argument=argument,
            )
        if len(path) >= MAX_DEPTH:
            raise InvalidArgument(
                f"`{argument}` is nested more than {MAX_DEPTH} levels deep; flatten the structure.",
                argument=argument,
            )
        enclosing = enclosing + (id(tree),)
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _walk(value, argument, path + (key,), enclosing)
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _walk(value, argument, path + (i,), enclosing)
    else:
        yield path, tree


class Params:
    """Flat view over a parameter structure.

    Parameters
    ----------
    tree : float, numpy array, or nested dict/list/tuple of them
        The user's parameters. They are read once and never modified.
    root : str
        The name given to a bare (non-container) parameter.

    Examples
    --------
    >>> import numpy as np
    >>> p = Params({"W": np.ones((2, 3)), "b": 0.5})
    >>> [leaf.name for leaf in p.leaves], p.size
    (['W', 'b'], 7)
    >>> p.build(np.arange(7.0))["b"]
    6.0
    """

    def __init__(self, tree: Any, *, argument: str = "params", root: str = "params") -> None:
        self.argument = argument
        self._tree = tree
        leaves: list[Leaf] = []
        chunks: list[np.ndarray] = []
        offset = 0
        seen: dict[str, tuple[Any, ...]] = {}
        for path, value in _walk(tree, argument):
            name = _name(path, root)
            if name in seen:
                raise InvalidArgument(
                    f"`{argument}` has two entries named `{name}` (paths {seen[name]!r} and {path!r}); "
                    "the report names tensors by path, so give them distinct keys.",
                    argument=argument,
                )
            seen[name] = path
            array, kind = _as_leaf_array(value, name, argument)
            if np.iscomplexobj(array):  # held as its real and imaginary parts (`_complex`)
                leaves.append(Leaf(name, path, (*array.shape, 2), PART_DTYPES[array.dtype], offset, kind, complex=True))
                chunks.append(parts(array))
            else:
                leaves.append(Leaf(name, path, array.shape, array.dtype, offset, kind))
                chunks.append(array)
            offset += leaves[-1].size
        if not leaves:
            raise InvalidValue(
                f"`{argument}` holds no arrays; pass a float, an array or a dict of arrays.",
                argument=argument,
            )
        self.leaves: tuple[Leaf, ...] = tuple(leaves)
        # float64 holds bfloat16 and float16/32/64 values exactly, so this copy loses nothing. One
        # pass per leaf (a float32 one converted as it is copied, no float64 temporary), on torch's
        # threads where they may run.
        self.values: np.ndarray = np.empty(offset)
        for leaf, chunk in zip(leaves, chunks):
            passes.copy(chunk, out=self.values[leaf.slice])
        self.values.setflags(write=False)

    @property
    def size(self) -> int:
        return int(self.values.size)

    @property
    def tree(self) -> Any:
        """The user's structure, as passed (read it, never write it)."""
        return self._tree

    def leaf_of(self, flat_position: int) -> Leaf:
        offsets = [leaf.offset for leaf in self.leaves]
        return self.leaves[int(np.searchsorted(offsets, flat_position, side="right")) - 1]

    def build(self, flat: np.ndarray, *, dtype: Any = None, share: bool = False) -> Any:
        """A fresh copy of the user's structure holding the values of `flat`.

        `dtype` overrides every leaf's dtype (used to re-evaluate a loss in float64 or complex).
        With `share`, the caller hands `flat` over (a new vector nothing else holds): leaves of its
        dtype become views of it instead of copies, one pass less over a model of millions.
        """
        new_leaves = {}
        for leaf in self.leaves:
            target = np.dtype(dtype) if dtype is not None else leaf.dtype
            piece = np.asarray(flat[leaf.slice])
            values = leaf.as_tensor((piece if share and piece.dtype == target else piece.astype(target)).reshape(leaf.shape))
            if leaf.kind == "float" and dtype is None:
                new_leaves[leaf.path] = complex(values) if leaf.complex else float(values)
            elif leaf.kind in ("float", "scalar"):
                new_leaves[leaf.path] = values[()]
            else:
                new_leaves[leaf.path] = values
        return _rebuild(self._tree, (), new_leaves)

    def with_leaves(self, leaves: dict[tuple[Any, ...], Any]) -> Any:
        """The user's structure with each leaf replaced by ``leaves[leaf.path]`` (as given: no
        conversion; a batch of values, or None for a skeleton)."""
        return _rebuild(self._tree, (), leaves)

    def skeleton(self) -> Params:
        """A copy that holds the structure's shape and the flat values, not the user's arrays: what
        a worker needs to rebuild parameter structures."""
        light = object.__new__(Params)
        light.__dict__.update(self.__dict__)
        light._tree = self.with_leaves({leaf.path: None for leaf in self.leaves})
        return light

    def copy(self) -> Any:
        """A fresh copy of the user's structure at its original values."""
        return self.build(self.values)


def _rebuild(tree: Any, path: tuple[Any, ...], leaves: dict[tuple[Any, ...], Any]) -> Any:
    if isinstance(tree, Mapping):
        rebuilt = {key: _rebuild(value, path + (key,), leaves) for key, value in tree.items()}
        if type(tree) is dict or not isinstance(tree, dict):
            return rebuilt
        # A dict subclass (OrderedDict, defaultdict, an attribute dict) keeps its type, so the
        # loss sees what the user passed; a shallow copy never touches the user's object.
        try:
            same_type = copy.copy(tree)
            for key, value in rebuilt.items():
                same_type[key] = value
        except Exception:
            return rebuilt
        return same_type
    if isinstance(tree, (list, tuple)):
        items = [_rebuild(value, path + (i,), leaves) for i, value in enumerate(tree)]
        if isinstance(tree, list):
            return items
        if hasattr(tree, "_fields"):  # namedtuple
            return type(tree)(*items)
        return type(tree)(items)
    return leaves[path]
