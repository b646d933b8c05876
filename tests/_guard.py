"""The no-mutation guard: every public gradprobe entry point, hashed around every call.

`install()` replaces each public function of every gradprobe module (``check``, ``check_vjp``,
``assert_gradients``, the adapters' entry points...) wherever the package's modules refer to it,
with a wrapper that fingerprints every argument before the call and again afterwards, also when
the call raises or is interrupted (``KeyboardInterrupt``), and fails the test on any change.

A fingerprint covers numpy arrays (dtype, shape, strides, writeability and bytes), torch tensors
(bytes, ``requires_grad`` and ``.grad``), torch modules (every parameter and buffer, the
parameters' identities, ``training`` flags and hooks, so a module must be restored bit for bit),
JAX arrays, containers (the identity of every entry: putting a new array into the user's dict is
a mutation too) and, for functions and callable objects, the arrays, tensors and modules they
capture (closure cells, module-level names the code reads, defaults, bound ``self``,
instance attributes). Captured data is compared
on the entries present both before and after, so a loss that appends to its own log is not
flagged, but one whose captured arrays change is.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

MAX_DEPTH = 8
MAX_ENTRIES = 10_000


class MutationDetected(AssertionError):
    pass


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_jax_array(obj: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(obj, jax.Array)


def _tensor_entry(t: Any) -> tuple:
    import torch

    data = t.detach()
    if data.is_sparse or data.layout != torch.strided:
        payload = repr(data)
    else:
        flat = data.cpu().contiguous().reshape(-1)
        payload = _digest(flat.view(torch.uint8).numpy().tobytes()) if flat.numel() else ""
    return ("tensor", str(t.dtype), tuple(t.shape), tuple(t.stride()), bool(t.requires_grad), payload)


def _is_data(value: Any) -> bool:
    """Arrays, tensors, modules, or a container holding some: what a function may read."""
    if isinstance(value, np.ndarray) or _is_torch_tensor(value) or _is_torch_module(value) or _is_jax_array(value):
        return True
    if isinstance(value, (Mapping, list, tuple)) and 0 < len(value) <= 1000:
        items = value.values() if isinstance(value, Mapping) else value
        return any(isinstance(v, np.ndarray) or _is_torch_tensor(v) or _is_torch_module(v) for v in items)
    return False


class _Fingerprinter:
    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.seen: set[int] = set()

    def add(self, path: str, value: Any) -> None:
        if len(self.entries) < MAX_ENTRIES:
            self.entries[path] = value

    def data(self, obj: Any, path: str, depth: int = 0, *, strict: bool = True) -> None:
        """Fingerprint `obj`; with ``strict=False`` (captured data) only array-like content counts."""
        if depth > MAX_DEPTH or len(self.entries) >= MAX_ENTRIES:
            return
        if isinstance(obj, np.ndarray):
            payload = repr(obj.tolist()) if obj.dtype == object else _digest(np.ascontiguousarray(obj).tobytes())
            self.add(path, ("ndarray", type(obj).__name__, obj.dtype.str, obj.shape, obj.strides,
                            bool(obj.flags.writeable), payload))  # fmt: skip
            if isinstance(obj, np.ma.MaskedArray):
                self.add(path + ".mask", _digest(np.ma.getmaskarray(obj).tobytes()))
            return
        if isinstance(obj, np.generic):
            self.add(path, ("numpy scalar", obj.dtype.str, _digest(np.asarray(obj).tobytes())))
            return
        if _is_torch_tensor(obj):
            grad = obj.grad if obj.is_leaf else None  # .grad of a non-leaf warns and is always None
            self.add(path, (_tensor_entry(obj), None if grad is None else _tensor_entry(grad)))
            return
        if _is_torch_module(obj):
            self.module(obj, path)
            return
        if _is_jax_array(obj):
            self.add(path, ("jax", str(obj.dtype), tuple(obj.shape), _digest(np.asarray(obj).tobytes())))
            return
        if id(obj) in self.seen:
            return
        if isinstance(obj, Mapping):
            self.seen.add(id(obj))
            if strict:
                self.add(path, (type(obj).__name__, tuple(repr(k) for k in obj), tuple(id(v) for v in obj.values())))
            for key, value in list(obj.items()):
                self.data(value, f"{path}[{key!r}]", depth + 1, strict=strict)
            return
        if isinstance(obj, (list, tuple)):
            self.seen.add(id(obj))
            if strict:
                self.add(path, (type(obj).__name__, len(obj), tuple(id(v) for v in obj)))
            for i, value in enumerate(obj):
                self.data(value, f"{path}[{i}]", depth + 1, strict=strict)
            return
        if callable(obj) and not isinstance(obj, type):
            self.seen.add(id(obj))
            self.captured(obj, path, depth)
            return
        if strict and isinstance(obj, (int, float, complex, str, bytes, bool, type(None))):
            self.add(path, ("value", type(obj).__name__, repr(obj)))

    def module(self, module: Any, path: str) -> None:
        for name, parameter in module.named_parameters(remove_duplicate=False):
            self.add(f"{path}.{name}#id", id(parameter))
            self.data(parameter, f"{path}.{name}")
        for name, buffer in module.named_buffers(remove_duplicate=False):
            self.add(f"{path}.{name}#id", id(buffer))
            self.data(buffer, f"{path}.{name}")
        for name, sub in module.named_modules(remove_duplicate=False):
            hooks = tuple(
                len(getattr(sub, attr, {}))
                for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
            )
            self.add(f"{path}.{name}#state", (type(sub).__name__, bool(sub.training), hooks))

    def captured(self, function: Any, path: str, depth: int) -> None:
        """Arrays, tensors and modules that a callable carries with it."""
        target = inspect.unwrap(function) if inspect.isfunction(function) else function
        if isinstance(target, functools.partial):
            self.data(target.args, path + ".partial.args", depth + 1, strict=False)
            self.data(target.keywords, path + ".partial.keywords", depth + 1, strict=False)
            target = target.func
        cells = getattr(target, "__closure__", None) or ()
        names = getattr(getattr(target, "__code__", None), "co_freevars", ())
        for name, cell in zip(names, cells):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.data(content, f"{path}.<closure {name}>", depth + 1, strict=False)
        self.data(getattr(target, "__defaults__", None) or (), path + ".<defaults>", depth + 1, strict=False)
        self.data(getattr(target, "__kwdefaults__", None) or {}, path + ".<kwdefaults>", depth + 1, strict=False)
        code = getattr(target, "__code__", None)
        namespace = getattr(target, "__globals__", None)
        if code is not None and isinstance(namespace, dict):
            # module-level data a function reads by name (a script's `model`, `X`, `params`)
            for name in code.co_names:
                value = namespace.get(name)
                if _is_data(value):
                    self.data(value, f"{path}.<global {name}>", depth + 1, strict=False)
        owner = getattr(target, "__self__", None)
        if owner is not None and not inspect.ismodule(owner):
            self.data(owner, path + ".<self>", depth + 1, strict=False)
        if not inspect.isroutine(target) and not isinstance(target, functools.partial):
            attributes = getattr(target, "__dict__", None)
            if isinstance(attributes, dict):
                self.data(attributes, path + ".<attributes>", depth + 1, strict=False)


def fingerprint(args: tuple, kwargs: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """(strict, lenient) fingerprints of a call's arguments; lenient ones come from captured data."""
    strict = _Fingerprinter()
    for i, value in enumerate(args):
        strict.data(value, f"arg{i}")
    for key, value in kwargs.items():
        strict.data(value, key)
    strict_entries = {k: v for k, v in strict.entries.items() if ".<" not in k}
    lenient_entries = {k: v for k, v in strict.entries.items() if ".<" in k}
    return strict_entries, lenient_entries


def changes(before: tuple[dict, dict], after: tuple[dict, dict]) -> list[str]:
    (strict_before, lenient_before), (strict_after, lenient_after) = before, after
    changed = [k for k in strict_before.keys() | strict_after.keys() if strict_before.get(k) != strict_after.get(k)]
    changed += [k for k in lenient_before.keys() & lenient_after.keys() if lenient_before[k] != lenient_after[k]]
    return sorted(changed)


class Guard:
    """Counts guarded calls; `install` wraps the entry points, `uninstall` puts them back."""

    def __init__(self) -> None:
        self.calls = 0
        self.patched: list[tuple[Any, str, Any]] = []
        self.wrappers: dict[int, Callable] = {}

    def wrap(self, function: Callable, qualified: str) -> Callable:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            before = fingerprint(args, kwargs)
            try:
                return function(*args, **kwargs)
            finally:
                changed = changes(before, fingerprint(args, kwargs))
                if changed:
                    raise MutationDetected(f"{qualified} changed its inputs: {', '.join(changed[:10])}")

        guarded.__gradprobe_guarded__ = True  # type: ignore[attr-defined]
        return guarded

    def install(self) -> None:
        import gradprobe

        for info in pkgutil.walk_packages(gradprobe.__path__, "gradprobe."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:  # an adapter whose framework is not installed
                continue
        modules = [m for name, m in list(sys.modules.items()) if name == "gradprobe" or name.startswith("gradprobe.")]
        entry_points: dict[int, tuple[Callable, str]] = {}
        for module in modules:
            for name in getattr(module, "__all__", ()):
                value = getattr(module, name, None)
                if inspect.isfunction(value) and not getattr(value, "__gradprobe_guarded__", False):
                    entry_points.setdefault(id(value), (value, f"{module.__name__}.{name}"))
        for key, (function, qualified) in entry_points.items():
            self.wrappers[key] = self.wrap(function, qualified)
        for module in modules:
            for attribute, value in list(vars(module).items()):
                if id(value) in self.wrappers and value is entry_points[id(value)][0]:
                    self.patched.append((module, attribute, value))
                    setattr(module, attribute, self.wrappers[id(value)])

    def uninstall(self) -> None:
        for module, attribute, value in reversed(self.patched):
            setattr(module, attribute, value)
        self.patched.clear()

    @property
    def guarded_names(self) -> set[str]:
        return {f"{module.__name__}.{attribute}" for module, attribute, _ in self.patched}
