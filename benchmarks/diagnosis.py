"""Diagnosis benchmark: does gradprobe's report name the kind of a planted gradient bug?

Run:  python benchmarks/diagnosis.py [--quick] [--frameworks numpy torch jax] [--dtypes float64 float32]
                                     [--strategies full directional] [--kinds ...] [--markdown]
                                     [--verbose] [--write benchmarks/RESULTS.md]

Five small models, each written once over an array namespace (numpy, torch or jax.numpy: einsum,
tanh, exp...) with a hand-written backward, at two sizes: a few hundred parameters for
``strategy="full"`` and 1,000 to 2,000 for ``strategy="directional"`` (forced: the default above 1000
parameters). The batch is m = 32 in every model and every loss is a mean over it.

* ``mlp``: three tanh layers, W1 (h, h), b1, W2 (h, h), b2, W3 (k, h), b3; squared error.
* ``mlp_bn``: a bias before a batch centering (b1, whose true gradient is zero), then a tanh layer.
* ``conv1d``: a kernel K (c, c, k) and bias c_b, tanh, a fixed readout (patches precomputed).
* ``conv2d``: a kernel K (c, c, k, k), all four axes equal so that every axis permutation keeps its shape.
* ``attention``: single-head softmax attention, Wq, Wk, Wv (d, d), and U (d, d), which the loss ignores.

A bug is planted in one tensor's gradient: in numpy in ``grad`` (checked with ``gp.check``), in torch
in a custom ``torch.autograd.Function``'s backward (``gp.torch.check_module`` for mlp, conv2d and
mlp_bn; ``gp.torch.check`` for conv1d and attention), in JAX in a ``jax.custom_vjp``'s backward
(``gp.jax.check``; tensors are named ``params.W1``...). The kinds and what the failing tensor's
``diagnosis`` must contain to count as *named* (case-sensitive substrings):

==========================  =======================================================================
factor                      "2.00x" / "0.50x" / "3.00x", as a tensor-wide factor (not a few elements)
1/m missing (batch_size)    "(= m, m=32)"; without ``batch_size``: "32.00x" (or "32x")
1/m doubled (batch_size)    "(= 1/m, m=32)"; without: "(= 1/32)"
sign flipped                "sign flipped" (tensor-wide)
transposed                  "transposed" (square 2-D)
axes permuted               "axes permuted (1, 0, 2)": p with analytic == numeric.transpose(p)
reversed axis               "reversed along axis 2": analytic == flip(numeric, axis)
shifted                     "shifted by 1 along axis 0" or "-1": analytic == np.roll(numeric, 1, axis)
swapped                     "the gradient of W1": another tensor's gradient, of the same shape
all zeros                   "all zeros"
should be zero              "should be zero": a nonzero gradient where the loss does not depend on it
                            (mlp_bn's b1 without the centering's correction, or with a weight decay
                            term; attention's U with a weight decay term)
few elements                "N of M wrong (elements ...)" or "N wrong element(s)", naming every
                            planted index (1 to 3 elements doubled)
row/column                  "all in row 2" / "all in column 3" (a whole row or column wrong)
rounded to float32          "rounded to float32" (float64 parameters, gradient cast to float32)
==========================  =======================================================================

Per check: FAIL, right tensor blamed (``report.failing`` is exactly the planted tensor), kind named,
and *contradictions*: a diagnosis or hint that the numbers printed beside it refute (the hint says
"right except at N element(s)" with N at least the tensor's size or more than half of it; "K of M
wrong" or "K wrong elements" disagrees with ``counts["fail"]`` or the size; a factor the worst
elements' analytic/numeric ratio misses by more than 1%; "all zeros" with a nonzero analytic
element; a PASS at a resolution finer than the planted error). Also counted: FAILed tensors whose
Taylor remainder slope reads "right" (>= 1.5). Each model also runs with its correct backward, to
count false FAILs. The full run takes about 3 to 5 minutes on 2 cores (JAX compiles each check's
function: most of it); ``--quick`` (one bug per kind, the mlp's correct gradient) about one.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import math
import os
import platform
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gradprobe as gp  # noqa: E402
from _results import markdown, write_section  # noqa: E402

#: The batch size of every model; the 1/m bugs multiply by M or 1/M.
M = 32
FRAMEWORKS = ("numpy", "torch", "jax")
DTYPES = ("float64", "float32")
STRATEGIES = ("full", "directional")


# -- array namespaces: one model, three frameworks ------------------------------------------------


class NumpyOps:
    name = "numpy"
    einsum = staticmethod(np.einsum)
    tanh = staticmethod(np.tanh)
    exp = staticmethod(np.exp)

    @staticmethod
    def sum(x, axis, keepdims=False):
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def amax(x, axis, keepdims=False):
        return x.max(axis=axis, keepdims=keepdims)

    @staticmethod
    def transpose(x, axes):
        return np.transpose(x, axes)

    @staticmethod
    def flip(x, axis):
        return np.flip(x, axis)

    @staticmethod
    def roll(x, shift, axis):
        return np.roll(x, shift, axis)

    @staticmethod
    def like(values: np.ndarray, x):
        return np.asarray(values, dtype=x.dtype)

    @staticmethod
    def through_float32(x):
        return x.astype(np.float32).astype(x.dtype)


class TorchOps:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self.einsum, self.tanh, self.exp = torch.einsum, torch.tanh, torch.exp

    def sum(self, x, axis, keepdims=False):
        return x.sum(dim=axis, keepdim=keepdims)

    def amax(self, x, axis, keepdims=False):
        return self.torch.amax(x, dim=axis, keepdim=keepdims)

    def transpose(self, x, axes):
        return x.permute(*axes)

    def flip(self, x, axis):
        return self.torch.flip(x, dims=(axis,))

    def roll(self, x, shift, axis):
        return self.torch.roll(x, shift, dims=axis)

    def like(self, values: np.ndarray, x):
        return self.torch.as_tensor(values, dtype=x.dtype)

    def through_float32(self, x):
        return x.to(self.torch.float32).to(x.dtype)


class JaxOps:
    name = "jax"

    def __init__(self):
        import jax.numpy as jnp

        self.jnp = jnp
        self.einsum, self.tanh, self.exp = jnp.einsum, jnp.tanh, jnp.exp

    def sum(self, x, axis, keepdims=False):
        return self.jnp.sum(x, axis=axis, keepdims=keepdims)

    def amax(self, x, axis, keepdims=False):
        return self.jnp.max(x, axis=axis, keepdims=keepdims)

    def transpose(self, x, axes):
        return self.jnp.transpose(x, axes)

    def flip(self, x, axis):
        return self.jnp.flip(x, axis)

    def roll(self, x, shift, axis):
        return self.jnp.roll(x, shift, axis)

    def like(self, values: np.ndarray, x):
        return self.jnp.asarray(values, dtype=x.dtype)

    def through_float32(self, x):
        return x.astype(self.jnp.float32).astype(x.dtype)


def _cast(data: dict, like) -> dict:
    """The data in the parameters' dtype: float32 data (float32-representable values) is then exact
    under gradprobe's float64 reference too."""
    if isinstance(like, np.ndarray):
        return {k: v.astype(like.dtype, copy=False) for k, v in data.items()}
    if hasattr(like, "to"):  # torch
        return {k: v.to(like.dtype) for k, v in data.items()}
    return {k: v.astype(like.dtype) for k, v in data.items()}


# -- the models: forward (the loss) and a hand-written backward -----------------------------------
#
# `backward` returns the gradient of every parameter, plus "_"-prefixed extras that a bug can
# return in a parameter's place (mlp_bn's "_b1_uncentered").


def mlp_forward(o, p, data):
    d = _cast(data, p["W1"])
    a1 = o.tanh(o.einsum("bi,oi->bo", d["X"], p["W1"]) + p["b1"])
    a2 = o.tanh(o.einsum("bi,oi->bo", a1, p["W2"]) + p["b2"])
    out = o.einsum("bi,oi->bo", a2, p["W3"]) + p["b3"]
    return 0.5 * o.sum((out - d["Y"]) ** 2, (0, 1)) / M


def mlp_backward(o, p, data):
    d = _cast(data, p["W1"])
    a1 = o.tanh(o.einsum("bi,oi->bo", d["X"], p["W1"]) + p["b1"])
    a2 = o.tanh(o.einsum("bi,oi->bo", a1, p["W2"]) + p["b2"])
    out = o.einsum("bi,oi->bo", a2, p["W3"]) + p["b3"]
    d_out = (out - d["Y"]) / M
    dz2 = o.einsum("bo,oi->bi", d_out, p["W3"]) * (1 - a2**2)
    dz1 = o.einsum("bo,oi->bi", dz2, p["W2"]) * (1 - a1**2)
    return {
        "W1": o.einsum("bo,bi->oi", dz1, d["X"]), "b1": o.sum(dz1, 0),
        "W2": o.einsum("bo,bi->oi", dz2, a1), "b2": o.sum(dz2, 0),
        "W3": o.einsum("bo,bi->oi", d_out, a2), "b3": o.sum(d_out, 0),
    }  # fmt: skip


def mlp_bn_forward(o, p, data):
    d = _cast(data, p["W1"])
    z1 = o.einsum("bi,oi->bo", d["X"], p["W1"]) + p["b1"]
    a1 = o.tanh(z1 - o.sum(z1, 0, keepdims=True) / M)
    a2 = o.tanh(o.einsum("bi,oi->bo", a1, p["W2"]) + p["b2"])
    return o.sum(a2 * d["Y"], (0, 1)) / M


def mlp_bn_backward(o, p, data):
    d = _cast(data, p["W1"])
    z1 = o.einsum("bi,oi->bo", d["X"], p["W1"]) + p["b1"]
    a1 = o.tanh(z1 - o.sum(z1, 0, keepdims=True) / M)
    a2 = o.tanh(o.einsum("bi,oi->bo", a1, p["W2"]) + p["b2"])
    dz2 = d["Y"] / M * (1 - a2**2)
    dc1 = o.einsum("bo,oi->bi", dz2, p["W2"]) * (1 - a1**2)
    dz1 = dc1 - o.sum(dc1, 0, keepdims=True) / M
    return {
        "W1": o.einsum("bo,bi->oi", dz1, d["X"]), "b1": o.sum(dz1, 0),
        "W2": o.einsum("bo,bi->oi", dz2, a1), "b2": o.sum(dz2, 0),
        "_b1_uncentered": o.sum(dc1, 0), "_b1_decay": 0.1 * p["b1"],
    }  # fmt: skip


def conv1d_forward(o, p, data):
    d = _cast(data, p["K"])
    a = o.tanh(o.einsum("bcjl,ocj->bol", d["X"], p["K"]) + p["c"][:, None])
    return o.sum(a * d["Y"], (0, 1, 2)) / M


def conv1d_backward(o, p, data):
    d = _cast(data, p["K"])
    a = o.tanh(o.einsum("bcjl,ocj->bol", d["X"], p["K"]) + p["c"][:, None])
    dz = d["Y"] / M * (1 - a**2)
    return {"K": o.einsum("bcjl,bol->ocj", d["X"], dz), "c": o.sum(dz, (0, 2))}


def conv2d_forward(o, p, data):
    d = _cast(data, p["K"])
    a = o.tanh(o.einsum("bcijhw,ocij->bohw", d["X"], p["K"]) + p["c"][:, None, None])
    return o.sum(a * d["Y"], (0, 1, 2, 3)) / M


def conv2d_backward(o, p, data):
    d = _cast(data, p["K"])
    a = o.tanh(o.einsum("bcijhw,ocij->bohw", d["X"], p["K"]) + p["c"][:, None, None])
    dz = d["Y"] / M * (1 - a**2)
    return {"K": o.einsum("bcijhw,bohw->ocij", d["X"], dz), "c": o.sum(dz, (0, 2, 3))}


def _attention(o, p, d):
    scale = 1.0 / math.sqrt(d["X"].shape[-1])
    q = o.einsum("btd,ed->bte", d["X"], p["Wq"])
    k = o.einsum("btd,ed->bte", d["X"], p["Wk"])
    v = o.einsum("btd,ed->bte", d["X"], p["Wv"])
    s = o.einsum("bte,bse->bts", q, k) * scale
    e = o.exp(s - o.amax(s, 2, keepdims=True))
    probs = e / o.sum(e, 2, keepdims=True)
    return scale, q, k, v, probs, o.einsum("bts,bse->bte", probs, v)


def attention_forward(o, p, data):
    d = _cast(data, p["Wq"])
    out = _attention(o, p, d)[-1]
    return 0.5 * o.sum((out - d["Y"]) ** 2, (0, 1, 2)) / M


def attention_backward(o, p, data):
    d = _cast(data, p["Wq"])
    scale, q, k, v, probs, out = _attention(o, p, d)
    d_out = (out - d["Y"]) / M
    d_probs = o.einsum("bte,bse->bts", d_out, v)
    dv = o.einsum("bts,bte->bse", probs, d_out)
    ds = probs * (d_probs - o.sum(probs * d_probs, 2, keepdims=True)) * scale
    dq = o.einsum("bts,bse->bte", ds, k)
    dk = o.einsum("bts,bte->bse", ds, q)
    return {
        "Wq": o.einsum("bte,btd->ed", dq, d["X"]), "Wk": o.einsum("bte,btd->ed", dk, d["X"]),
        "Wv": o.einsum("bte,btd->ed", dv, d["X"]), "U": p["U"] * 0, "_U_decay": 0.1 * p["U"],
    }  # fmt: skip


@dataclass(frozen=True)
class Model:
    name: str
    forward: Callable
    backward: Callable
    make: Callable[[np.random.Generator, bool], tuple[dict, dict]]  # (rng, large) -> (params, data)
    entry: str = "check"  # torch: "check" (gp.torch.check) or "check_module"


def _weights(rng, shape, fan_in):
    return rng.standard_normal(shape) / math.sqrt(fan_in)


def _make_mlp(rng, large):
    h, k = (24, 8) if large else (8, 3)
    params = {
        "W1": _weights(rng, (h, h), h), "b1": 0.1 * rng.standard_normal(h),
        "W2": _weights(rng, (h, h), h), "b2": 0.1 * rng.standard_normal(h),
        "W3": _weights(rng, (k, h), h), "b3": 0.1 * rng.standard_normal(k),
    }  # fmt: skip
    return params, {"X": rng.standard_normal((M, h)), "Y": rng.standard_normal((M, k))}


def _make_mlp_bn(rng, large):
    h = 24 if large else 6
    params = {
        "W1": _weights(rng, (h, h), h), "b1": 0.1 * rng.standard_normal(h),
        "W2": _weights(rng, (h, h), h), "b2": 0.1 * rng.standard_normal(h),
    }  # fmt: skip
    return params, {"X": rng.standard_normal((M, h)), "Y": rng.standard_normal((M, h))}


def _patches(x: np.ndarray, size: int, axes: int) -> np.ndarray:
    """(batch, channels, *spatial) -> (batch, channels, *kernel, *out): the input under each kernel tap."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (size,) * axes, axis=tuple(range(2, 2 + axes)))
    # sliding_window_view puts the window axes last: move them before the output positions.
    order = (0, 1, *range(2 + axes, 2 + 2 * axes), *range(2, 2 + axes))
    return np.ascontiguousarray(np.transpose(windows, order))


def _make_conv1d(rng, large):
    c, k, length = (16, 5, 12) if large else (3, 4, 12)
    x = rng.standard_normal((M, c, length))
    params = {"K": _weights(rng, (c, c, k), c * k), "c": 0.1 * rng.standard_normal(c)}
    return params, {"X": _patches(x, k, 1), "Y": rng.standard_normal((M, c, length - k + 1))}


def _make_conv2d(rng, large):
    c, k, side = (6, 6, 8) if large else (3, 3, 6)
    x = rng.standard_normal((M, c, side, side))
    params = {"K": _weights(rng, (c, c, k, k), c * k * k), "c": 0.1 * rng.standard_normal(c)}
    return params, {"X": _patches(x, k, 2), "Y": rng.standard_normal((M, c, side - k + 1, side - k + 1))}


def _make_attention(rng, large):
    d, t = (20, 4) if large else (6, 4)
    params = {name: _weights(rng, (d, d), d) for name in ("Wq", "Wk", "Wv", "U")}
    return params, {"X": rng.standard_normal((M, t, d)), "Y": rng.standard_normal((M, t, d))}


MODELS = {
    m.name: m
    for m in [
        Model("mlp", mlp_forward, mlp_backward, _make_mlp, "check_module"),
        Model("mlp_bn", mlp_bn_forward, mlp_bn_backward, _make_mlp_bn, "check_module"),
        Model("conv1d", conv1d_forward, conv1d_backward, _make_conv1d, "check"),
        Model("conv2d", conv2d_forward, conv2d_backward, _make_conv2d, "check_module"),
        Model("attention", attention_forward, attention_backward, _make_attention, "check"),
    ]
}


def model_point(model: Model, large: bool, dtype: str) -> tuple[dict, dict]:
    """The model's parameters and data as float64 numpy arrays (holding float32 values for float32)."""
    rng = np.random.default_rng([list(MODELS).index(model.name), int(large)])
    params, data = model.make(rng, large)
    if dtype == "float32":
        params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
        data = {k: v.astype(np.float32).astype(np.float64) for k, v in data.items()}
    return params, data


# -- the bugs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bug:
    """One planted bug: `kind` in tensor `target` of `model`; the other fields say how."""

    kind: str
    model: str
    target: str
    factor: float | None = None  # factor, 1/m, sign
    axes: tuple[int, ...] | None = None  # transposed, axes permuted
    axis: int | None = None  # reversed axis, shifted
    source: str | None = None  # swapped, should be zero: whose gradient is returned instead
    count: int = 0  # few elements: how many are doubled
    line: tuple[str, int, float] | None = None  # row/column: ("row", 2, factor)
    batch_size: bool = False  # pass batch_size=M to the check

    @property
    def label(self) -> str:
        """``mlp.W2 factor x2``, ``conv2d.K axes permuted (1, 0, 2, 3)``, ``mlp.W1 swapped <- W2``."""
        if self.kind in ("factor", "1/m missing", "1/m doubled"):
            how = f"x{self.factor:g}" if self.factor >= 1 else f"x1/{1 / self.factor:g}"
        elif self.kind == "axes permuted":
            how = str(self.axes)
        elif self.kind in ("reversed axis", "shifted"):
            how = f"axis {self.axis}"
        elif self.source:
            how = f"<- {self.source.lstrip('_')}"
        elif self.kind == "few elements":
            how = f"{self.count} doubled"
        elif self.line:
            how = f"{self.line[0]} {self.line[1]} x{self.line[2]:g}"
        else:
            how = ""
        return f"{self.model}.{self.target} {self.kind}{' ' + how if how else ''}{' (batch_size)' if self.batch_size else ''}"

    @property
    def table_kind(self) -> str:
        if self.kind in ("1/m missing", "1/m doubled"):
            return self.kind + (" (batch_size)" if self.batch_size else "")
        return self.kind


def _bugs() -> list[Bug]:
    b = Bug
    return [
        b("factor", "mlp", "W2", factor=2.0), b("factor", "conv2d", "K", factor=2.0),
        b("factor", "conv1d", "K", factor=0.5), b("factor", "mlp", "b1", factor=0.5),
        b("factor", "attention", "Wv", factor=3.0), b("factor", "conv2d", "c", factor=3.0),
        b("1/m missing", "mlp", "W1", factor=M, batch_size=True), b("1/m missing", "conv2d", "K", factor=M, batch_size=True),
        b("1/m missing", "mlp", "b2", factor=M), b("1/m missing", "conv1d", "K", factor=M),
        b("1/m doubled", "conv1d", "c", factor=1 / M, batch_size=True),
        b("1/m doubled", "attention", "Wk", factor=1 / M, batch_size=True),
        b("1/m doubled", "mlp", "W3", factor=1 / M), b("1/m doubled", "conv2d", "c", factor=1 / M),
        b("sign flipped", "mlp", "W2", factor=-1.0), b("sign flipped", "conv2d", "K", factor=-1.0),
        b("sign flipped", "conv1d", "c", factor=-1.0), b("sign flipped", "attention", "Wq", factor=-1.0),
        b("transposed", "mlp", "W1", axes=(1, 0)), b("transposed", "mlp", "W2", axes=(1, 0)),
        b("transposed", "attention", "Wk", axes=(1, 0)), b("transposed", "attention", "Wv", axes=(1, 0)),
        b("transposed", "mlp_bn", "W2", axes=(1, 0)),
        b("axes permuted", "conv1d", "K", axes=(1, 0, 2)), b("axes permuted", "conv2d", "K", axes=(1, 0, 2, 3)),
        b("axes permuted", "conv2d", "K", axes=(0, 1, 3, 2)), b("axes permuted", "conv2d", "K", axes=(1, 2, 0, 3)),
        b("axes permuted", "conv2d", "K", axes=(3, 2, 1, 0)),
        b("reversed axis", "conv2d", "K", axis=3), b("reversed axis", "conv2d", "K", axis=2),
        b("reversed axis", "conv1d", "K", axis=2), b("reversed axis", "mlp", "b1", axis=0),
        b("reversed axis", "mlp", "W1", axis=1),
        b("shifted", "conv1d", "K", axis=2), b("shifted", "mlp", "W1", axis=0), b("shifted", "conv2d", "K", axis=3),
        b("shifted", "attention", "Wq", axis=1), b("shifted", "mlp", "b2", axis=0),
        b("swapped", "mlp", "W2", source="W1"), b("swapped", "mlp", "W1", source="W2"),
        b("swapped", "mlp", "b1", source="b2"), b("swapped", "attention", "Wq", source="Wk"),
        b("swapped", "attention", "Wk", source="Wv"),
        b("all zeros", "mlp", "W2", factor=0.0), b("all zeros", "conv2d", "K", factor=0.0),
        b("all zeros", "conv1d", "c", factor=0.0), b("all zeros", "attention", "Wv", factor=0.0),
        b("should be zero", "mlp_bn", "b1", source="_b1_uncentered"), b("should be zero", "mlp_bn", "b1", source="_b1_decay"),
        b("should be zero", "attention", "U", source="_U_decay"),
        b("few elements", "mlp", "W2", count=1), b("few elements", "conv2d", "K", count=2),
        b("few elements", "conv1d", "K", count=3), b("few elements", "mlp", "b1", count=1),
        b("few elements", "attention", "Wv", count=2), b("few elements", "mlp_bn", "W2", count=3),
        b("row/column", "mlp", "W1", line=("row", 2, 2.0)), b("row/column", "mlp", "W2", line=("column", 3, 0.0)),
        b("row/column", "attention", "Wv", line=("row", 1, -1.0)), b("row/column", "mlp_bn", "W1", line=("column", 0, 2.0)),
        b("rounded to float32", "mlp", "W1"), b("rounded to float32", "conv2d", "K"),
        b("rounded to float32", "conv1d", "c"), b("rounded to float32", "attention", "Wq"),
    ]  # fmt: skip


BUGS = _bugs()
KINDS = list(dict.fromkeys(b.table_kind for b in BUGS))
#: A few bugs per kind and framework, for --quick: the first bug of each kind.
QUICK = {b for b in BUGS if b == next(c for c in BUGS if c.table_kind == b.table_kind)}


def _elements(gradient: np.ndarray, count: int) -> list[tuple[int, ...]]:
    """`count` elements of large gradient, no two sharing an index along any axis (so the report
    names them one by one instead of summarising them as a row)."""
    chosen: list[tuple[int, ...]] = []
    for flat in np.argsort(-np.abs(gradient), axis=None, kind="stable"):
        index = tuple(int(i) for i in np.unravel_index(flat, gradient.shape))
        if all(all(a != b for a, b in zip(index, other)) for other in chosen):
            chosen.append(index)
        if len(chosen) == count:
            break
    return chosen


@dataclass(frozen=True)
class Planted:
    """A bug at one model size: the bug, and the elements it doubles (few elements)."""

    bug: Bug | None  # None: the correct gradient
    model: str
    large: bool
    indices: tuple[tuple[int, ...], ...] = ()


def planted(bug: Bug | None, model: str, large: bool) -> Planted:
    if bug is None or bug.kind != "few elements":
        return Planted(bug, model, large)
    params, data = model_point(MODELS[model], large, "float64")
    gradient = MODELS[model].backward(NumpyOps, params, data)[bug.target]
    return Planted(bug, model, large, tuple(_elements(gradient, bug.count)))


def apply_bug(o, plant: Planted, grads: dict, shape: tuple[int, ...]) -> dict:
    """The gradients with `plant`'s bug planted (the correct ones when there is none)."""
    bug = plant.bug
    grads = {k: v for k, v in grads.items() if not k.startswith("_")} | (
        {bug.target: grads[bug.source]} if bug is not None and bug.source else {}
    )
    if bug is None or bug.source:
        return grads
    g = grads[bug.target]
    if bug.factor is not None:
        g = g * bug.factor
    elif bug.axes is not None:
        g = o.transpose(g, bug.axes)
    elif bug.kind == "reversed axis":
        g = o.flip(g, bug.axis)
    elif bug.kind == "shifted":
        g = o.roll(g, 1, bug.axis)
    elif bug.kind == "few elements":
        mask = np.ones(shape)
        for index in plant.indices:
            mask[index] = 2.0
        g = g * o.like(mask, g)
    elif bug.kind == "row/column":
        direction, where, factor = bug.line
        mask = np.ones(shape)
        mask[(where, slice(None)) if direction == "row" else (slice(None), where)] = factor
        g = g * o.like(mask, g)
    elif bug.kind == "rounded to float32":
        g = o.through_float32(g)
    else:
        raise ValueError(bug.kind)
    return grads | {bug.target: g}


def planted_error(plant: Planted, dtype: str) -> float:
    """The planted error's relative size ||bug(g) - g|| / ||g|| in the target tensor, in float64 at
    the check's point (inf where the true gradient is zero)."""
    model = MODELS[plant.model]
    params, data = model_point(model, plant.large, dtype)
    correct = model.backward(NumpyOps, params, data)
    shape = params[plant.bug.target].shape
    wrong = apply_bug(NumpyOps, plant, correct, shape)[plant.bug.target]
    size = np.linalg.norm(correct[plant.bug.target])
    error = np.linalg.norm(wrong - correct[plant.bug.target])
    return float(error / size) if size > 1e-12 * error else math.inf


# -- what the report should say ---------------------------------------------------------------------

#: A diagnosis about a few elements, not the whole tensor: "3 of 20 wrong (...)", "2 wrong elements".
_PARTIAL = re.compile(r"\b\d+ of \d+ wrong\b|\bwrong elements?\b")


def _says(text: str, phrase: str) -> bool:
    """`phrase` in `text`, not glued to a preceding digit, point or minus sign ("2.00x" is not in "12.00x")."""
    return re.search(r"(?<![\d.\-])" + re.escape(phrase), text) is not None


def _names_element(text: str, index: tuple[int, ...]) -> bool:
    """Whether `text` names the element `index` after the word "element" ("elements (0, 1), (3, 2)",
    "element 4", "at (17,)")."""
    after = text[text.find("element") :] if "element" in text else ""
    if len(index) > 1:
        return "(" + ", ".join(str(i) for i in index) + ")" in after
    return index[0] in {int(n) for n in re.findall(r"(?<![\d.])\d+(?![\d.x])", after)}


def kind_named(plant: Planted, diagnosis: str | None, name_of: Callable[[str], str], size: int) -> bool:
    """Whether `diagnosis` (of the planted tensor) names the planted bug's kind (see the module's table)."""
    bug = plant.bug
    if bug is None or not diagnosis:
        return False
    d = diagnosis
    whole = not _PARTIAL.search(d)
    if bug.kind == "factor":
        return whole and _says(d, f"{bug.factor:.2f}x")
    if bug.kind == "1/m missing":
        return whole and ("(= m, m=32)" in d if bug.batch_size else _says(d, "32x") or _says(d, "32.00x"))
    if bug.kind == "1/m doubled":
        return whole and ("(= 1/m, m=32)" in d if bug.batch_size else "(= 1/32)" in d)
    if bug.kind == "sign flipped":
        return whole and "sign flipped" in d
    if bug.kind == "transposed":
        return "transposed" in d
    if bug.kind == "axes permuted":
        return f"axes permuted {bug.axes}" in d
    if bug.kind == "reversed axis":
        return f"reversed along axis {bug.axis}" in d
    if bug.kind == "shifted":
        return any(f"shifted by {s} along axis {bug.axis}" in d for s in ("1", "-1"))
    if bug.kind == "swapped":
        return re.search(r"the gradient of " + re.escape(name_of(bug.source)) + r"(?![\w.])", d) is not None
    if bug.kind == "all zeros":
        return "all zeros" in d
    if bug.kind == "should be zero":
        return "should be zero" in d
    if bug.kind == "few elements":
        count = len(plant.indices)
        counted = f"{count} of {size} wrong" in d or re.search(rf"(?<!\d){count} wrong elements?\b", d) is not None
        return counted and all(_names_element(d, index) for index in plant.indices)
    if bug.kind == "row/column":
        direction, where, _ = bug.line
        return re.search(rf"all in {direction} {where}(?!\d)", d) is not None
    if bug.kind == "rounded to float32":
        return "rounded to float32" in d
    raise ValueError(bug.kind)


#: A Taylor remainder slope at least this large reads as "right" (the report prints "2 = right, 1 = wrong").
TAYLOR_RIGHT = 1.5

_FACTOR = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)x\b")


def contradictions(tensor: Any) -> list[str]:
    """Sentences of a tensor's diagnosis or hint that the numbers beside them refute."""
    found = []
    d, hint = tensor.diagnosis or "", tensor.hint or ""
    size = math.prod(tensor.shape)
    fails = tensor.counts.get("fail", 0)
    match = re.search(r"right except at (\d+) element", hint)
    if match and (int(match.group(1)) >= size or int(match.group(1)) > size / 2):
        found.append(f"hint 'right except at {match.group(1)} element(s)' of {size}")
    match = re.search(r"\b(\d+) of (\d+) wrong\b", d)
    if match and (int(match.group(1)) != fails or int(match.group(2)) != size):
        found.append(f"'{match.group(0)}' but counts['fail'] = {fails}, size {size}")
    match = re.match(r"(\d+) wrong elements?\b", d)
    if match and int(match.group(1)) != fails:
        found.append(f"'{match.group(0)}' but counts['fail'] = {fails}")
    factor = -1.0 if "sign flipped" in d else None
    match = _FACTOR.search(d)
    if match and factor is None:
        factor = float(match.group(1))
    worst = [w for w in tensor.worst if w.numeric != 0 and np.isfinite(w.numeric) and np.isfinite(w.analytic)]
    if factor is not None and worst:
        gap = max(abs(w.analytic - w.numeric) for w in worst)
        for w in worst:
            ratio = w.analytic / w.numeric
            if abs(w.analytic - w.numeric) >= 0.1 * gap and abs(ratio - factor) > 0.01 * abs(factor):
                found.append(f"factor {match.group(0) if match else 'sign flipped'} but at {tuple(w.index)} "
                             f"analytic/numeric = {ratio:.4g}")  # fmt: skip
                break
    if "all zeros" in d:
        values = [w.analytic for w in tensor.worst]
        if tensor.analytic is not None:
            values += list(np.ravel(tensor.analytic))
        if any(v != 0 for v in values):
            found.append("'all zeros' with a nonzero analytic element")
    return found


# -- running a check in each framework ------------------------------------------------------------


def _signature(fn: Callable, names: list[str]) -> Callable:
    """`fn(*tensors)` with the parameter names `names`, which `gp.torch.check` names tensors after."""
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return fn


def check_numpy(plant: Planted, dtype: str, options: dict):
    model = MODELS[plant.model]
    params, data = model_point(model, plant.large, dtype)
    params = {k: v.astype(dtype) for k, v in params.items()}
    data = {k: v.astype(dtype) for k, v in data.items()}
    shape = params[plant.bug.target].shape if plant.bug else ()

    def loss(p):
        return model.forward(NumpyOps, p, data)

    def grad(p):
        return apply_bug(NumpyOps, plant, model.backward(NumpyOps, p, data), shape)

    return gp.check(loss, grad, params, **options), lambda name: name


def _torch_function(plant: Planted, names: list[str], shape: tuple[int, ...]):
    import torch

    model, o = MODELS[plant.model], TORCH

    class PlantedFunction(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(X, data, *tensors):
            return model.forward(o, dict(zip(names, tensors)), {**data, "X": X})

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.data = inputs[1]
            ctx.save_for_backward(inputs[0], *inputs[2:])

        @staticmethod
        def backward(ctx, g):
            X, *tensors = ctx.saved_tensors
            grads = model.backward(o, dict(zip(names, tensors)), {**ctx.data, "X": X})
            grads = apply_bug(o, plant, {k: g * v for k, v in grads.items()}, shape)
            return (None, None, *[grads[n] for n in names])

    return PlantedFunction


def check_torch(plant: Planted, dtype: str, options: dict):
    import torch

    model = MODELS[plant.model]
    params, data = model_point(model, plant.large, dtype)
    torch_dtype = getattr(torch, dtype)
    names = list(params)
    shape = params[plant.bug.target].shape if plant.bug else ()
    function = _torch_function(plant, names, shape)
    X = torch.as_tensor(data.pop("X"), dtype=torch_dtype)
    rest = {k: torch.as_tensor(v, dtype=torch_dtype) for k, v in data.items()}
    if model.entry == "check_module":

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                for name in names:
                    self.register_parameter(name, torch.nn.Parameter(torch.as_tensor(params[name], dtype=torch_dtype)))

            def forward(self, x):
                return function.apply(x, rest, *[getattr(self, n) for n in names])

        return gp.torch.check_module(Module(), lambda out: out, X, **options), lambda name: name
    tensors = [torch.as_tensor(params[n], dtype=torch_dtype).requires_grad_() for n in names]
    fn = _signature(lambda *ts: function.apply(X, rest, *ts), names)
    return gp.torch.check(fn, *tensors, **options), lambda name: name


def check_jax(plant: Planted, dtype: str, options: dict):
    import jax
    import jax.numpy as jnp

    model, o = MODELS[plant.model], JAX
    params, data = model_point(model, plant.large, dtype)
    shape = params[plant.bug.target].shape if plant.bug else ()
    data = {k: jnp.asarray(v, dtype=dtype) for k, v in data.items()}

    @jax.custom_vjp
    def planted_loss(p):
        return model.forward(o, p, data)

    def forward(p):
        return planted_loss(p), p

    def backward(p, g):
        grads = apply_bug(o, plant, {k: g * v for k, v in model.backward(o, p, data).items()}, shape)
        return ({k: grads[k] for k in p},)

    planted_loss.defvjp(forward, backward)

    def fn(params):
        return planted_loss(params)

    arrays = {k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}
    return gp.jax.check(fn, arrays, **options), lambda name: f"params.{name}"


CHECKS = {"numpy": check_numpy, "torch": check_torch, "jax": check_jax}
TORCH: Any = None
JAX: Any = None


def setup(frameworks) -> None:
    global TORCH, JAX
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(1)
        TORCH = TorchOps()
    if "jax" in frameworks:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 arrays; float32 ones are made explicitly
        JAX = JaxOps()


# -- one check and its outcome --------------------------------------------------------------------


@dataclass
class Outcome:
    plant: Planted
    framework: str
    dtype: str
    strategy: str
    status: str = "error"
    failing: tuple[str, ...] = ()
    target: str = ""
    diagnosis: str | None = None
    named: bool = False
    contradictions: list[str] = field(default_factory=list)
    taylor_right: list[str] = field(default_factory=list)  # FAILed tensors whose Taylor slope reads "right"
    seconds: float = 0.0
    nfev: int = 0
    resolution: float = math.nan  # the planted tensor's
    planted_error: float = math.nan  # the planted error's relative size
    report: Any = None
    error: str | None = None

    @property
    def bug(self) -> Bug | None:
        return self.plant.bug

    @property
    def blamed_right(self) -> bool:
        return self.status == "fail" and self.failing == (self.target,)

    def describe(self) -> str:
        where = self.bug.label if self.bug else f"{self.plant.model} correct"
        head = f"{self.framework} {self.dtype} {self.strategy}: {where}"
        if self.plant.indices:
            head += f" at {', '.join(str(i) for i in self.plant.indices)}"
        if self.error:
            return f"{head}: ERROR {self.error.strip().splitlines()[-1]}"
        text = f"{head}: {self.status}"
        if self.failing:
            text += f" (failing {', '.join(self.failing)})"
        if self.bug:
            text += f"; {self.target}: {self.diagnosis!r}"
        if self.bug and self.status != "fail":
            text += f" (resolution {self.resolution:.1e}, planted error {self.planted_error:.1e})"
        for c in self.contradictions:
            text += f" | CONTRADICTION {c}"
        for t in self.taylor_right:
            text += f" | {t}"
        return text


def run_one(plant: Planted, framework: str, dtype: str, strategy: str) -> Outcome:
    outcome = Outcome(plant, framework, dtype, strategy)
    options = {"strategy": strategy}
    if plant.bug is not None and plant.bug.batch_size:
        options["batch_size"] = M
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report, name_of = CHECKS[framework](plant, dtype, options)
    except Exception:  # noqa: BLE001 -- a crash is a result to report
        outcome.error = traceback.format_exc()
        outcome.seconds = time.perf_counter() - start
        return outcome
    outcome.seconds = time.perf_counter() - start
    outcome.report, outcome.status, outcome.failing, outcome.nfev = report, report.status, tuple(report.failing), report.nfev
    for name, tensor in report.tensors.items():
        outcome.contradictions += [f"{name}: {c}" for c in contradictions(tensor)]
        if tensor.status == "fail" and tensor.taylor_slope is not None and tensor.taylor_slope >= TAYLOR_RIGHT:
            outcome.taylor_right.append(f"{name}: FAIL beside Taylor slope {tensor.taylor_slope:.2f} (2 = right)")
    if plant.bug is not None:
        outcome.target = name_of(plant.bug.target)
        tensor = report.tensors[outcome.target]
        outcome.diagnosis = tensor.diagnosis
        outcome.named = tensor.status == "fail" and kind_named(plant, tensor.diagnosis, name_of, math.prod(tensor.shape))
        outcome.resolution, outcome.planted_error = tensor.resolution, planted_error(plant, dtype)
        if tensor.status == "pass" and outcome.planted_error > tensor.resolution:
            outcome.contradictions.append(
                f"{outcome.target}: PASS at resolution {tensor.resolution:.1e}, but the planted error is "
                f"{outcome.planted_error:.1e}"
            )
    return outcome


# -- tables ---------------------------------------------------------------------------------------


def _columns(frameworks, dtypes) -> list[tuple[str, str]]:
    return [(f, d) for f in frameworks for d in dtypes]


def bug_rows(outcomes: list[Outcome], frameworks, dtypes, strategies) -> list[dict[str, str]]:
    rows = []
    for kind in KINDS:
        for strategy in strategies:
            group = [o for o in outcomes if o.bug and o.bug.table_kind == kind and o.strategy == strategy]
            if not group:
                continue
            row = {"kind": kind, "strategy": strategy}
            for f, d in _columns(frameworks, dtypes):
                cell = [o for o in group if o.framework == f and o.dtype == d]
                row[f"{f} {d}"] = _cell(cell)
            row["all"] = _cell(group)
            row["contra."] = str(sum(bool(o.contradictions) for o in group))
            rows.append(row)
    for strategy in strategies:
        group = [o for o in outcomes if o.bug and o.strategy == strategy]
        if group:
            row = {"kind": "**all bugs**", "strategy": strategy}
            for f, d in _columns(frameworks, dtypes):
                row[f"{f} {d}"] = _cell([o for o in group if o.framework == f and o.dtype == d])
            row["all"] = _cell(group)
            row["contra."] = str(sum(bool(o.contradictions) for o in group))
            rows.append(row)
    return rows


def _cell(group: list[Outcome]) -> str:
    if not group:
        return ""
    named = sum(o.named for o in group)
    blamed = sum(o.blamed_right for o in group)
    failed = sum(o.status == "fail" for o in group)
    errors = sum(o.status == "error" for o in group)
    return f"{named} / {blamed} / {failed} / {len(group)}" + (f" ({errors} err)" if errors else "")


def correct_rows(outcomes: list[Outcome], frameworks, dtypes, strategies) -> list[dict[str, str]]:
    rows = []
    for strategy in strategies:
        group = [o for o in outcomes if o.bug is None and o.strategy == strategy]
        if not group:
            continue
        row = {"correct gradients": "false FAIL / inconclusive / checks", "strategy": strategy}
        for f, d in _columns(frameworks, dtypes):
            cell = [o for o in group if o.framework == f and o.dtype == d]
            row[f"{f} {d}"] = (
                f"{sum(o.status == 'fail' for o in cell)} / {sum(o.status == 'inconclusive' for o in cell)} / {len(cell)}"
                if cell else ""
            )  # fmt: skip
        row["contra."] = str(sum(bool(o.contradictions) for o in group))
        rows.append(row)
    return rows


def _shape_of(text: str | None) -> str:
    """A diagnosis with its numbers blanked ("3 of 64 wrong (elements (0, 1))" -> "N of N wrong (elements (N, N))")."""
    if not text:
        return "(none)"
    return re.sub(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", "N", text)


def said_rows(outcomes: list[Outcome], strategies) -> list[dict[str, str]]:
    """Per kind: named out of run per strategy, and what the report said when it did not name it."""
    rows = []
    for kind in KINDS:
        group = [o for o in outcomes if o.bug and o.bug.table_kind == kind]
        if not group:
            continue
        row = {"kind": kind}
        for strategy in strategies:
            part = [o for o in group if o.strategy == strategy]
            row[f"named ({strategy})"] = f"{sum(o.named for o in part)} / {len(part)}" if part else ""
        missed = Counter(
            _shape_of(o.diagnosis) if o.status == "fail" else f"status {o.status}" for o in group if not o.named
        )
        row["said instead (most common)"] = "; ".join(f"`{s}` ({n})" for s, n in missed.most_common(3)).replace("|", "\\|")
        rows.append(row)
    return rows


def unnamed(outcomes: list[Outcome]) -> list[str]:
    """One line per bug and strategy whose kind was not named: what the report said instead, verbatim,
    and in how many of the framework x dtype checks."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        if o.bug and not o.named:
            groups.setdefault((o.bug.label, o.strategy), []).append(o)
    lines = []
    for (label, strategy), group in groups.items():
        runs_ = sum(1 for o in outcomes if o.bug and o.bug.label == label and o.strategy == strategy)
        said = Counter(repr(o.diagnosis) if o.status == "fail" else f"{o.status} (resolution {o.resolution:.1e}, "
                       f"planted error {o.planted_error:.1e})" for o in group)  # fmt: skip
        where = group[0].plant.indices
        planted = f" at {', '.join(str(i) for i in where)}" if where else ""
        lines.append(
            f"- {label}{planted}, {strategy}, {len(group)} of {runs_}: "
            + "; ".join(f"{text} ({n})" if len(said) > 1 else text for text, n in said.most_common(3))
        )
    return lines


def plain(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r.get(c, "").ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def catalogue(plants: list[Planted], frameworks, dtypes) -> list[dict[str, str]]:
    """Distinct bug instances (bug x framework x dtype) per kind and framework."""
    rows = []
    for kind in KINDS:
        row = {"kind": kind}
        for f in frameworks:
            row[f] = str(sum(1 for p in plants for d in dtypes if p.bug and p.bug.table_kind == kind and runs(p.bug, f, d)))
        row["shapes"] = ", ".join(sorted({f"{p.model}.{p.bug.target}" for p in plants if p.bug and p.bug.table_kind == kind}))
        rows.append(row)
    total = {"kind": "**all**"} | {
        f: str(sum(int(r[f]) for r in rows)) for f in frameworks
    } | {"shapes": ""}  # fmt: skip
    return rows + [total]


def runs(bug: Bug | None, framework: str, dtype: str) -> bool:
    """Whether a bug is planted in this framework and dtype (a float32-rounded gradient only for float64)."""
    return bug is None or not (bug.kind == "rounded to float32" and dtype != "float64")


def machine() -> str:
    versions = [f"nproc {os.cpu_count()}", f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    for module in ("torch", "jax"):
        if module in sys.modules:
            versions.append(f"{module} {sys.modules[module].__version__}")
    return f"{platform.platform()}, " + ", ".join(versions) + " (torch with 1 thread)"


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return commit + (" (with uncommitted changes in src/)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one bug per kind and one model's correct gradient")
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--kinds", nargs="+", choices=KINDS, help="only these kinds (and no correct gradients)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument("--verbose", action="store_true", help="print every check's line (stderr), and reports of anomalies")
    parser.add_argument("--write", type=Path, help="replace (or append) the '## Diagnosis' section of this file")
    args = parser.parse_args(argv)
    setup(args.frameworks)

    bugs = [b for b in BUGS if (not args.quick or b in QUICK) and (not args.kinds or b.table_kind in args.kinds)]
    models = [] if args.kinds else (["mlp"] if args.quick else list(MODELS))
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    for strategy in args.strategies:
        large = strategy == "directional"
        plants = [planted(b, b.model, large) for b in bugs] + [planted(None, m, large) for m in models]
        for framework in args.frameworks:
            t0 = time.perf_counter()
            for dtype in args.dtypes:
                for plant in plants:
                    if not runs(plant.bug, framework, dtype):
                        continue
                    o = run_one(plant, framework, dtype, strategy)
                    outcomes.append(o)
                    anomaly = o.error or o.contradictions or (o.bug is None and o.status != "pass") or (o.bug and not o.named)
                    if args.verbose or o.error or o.contradictions or o.taylor_right or (o.bug is None and o.status != "pass"):
                        print(o.describe(), file=sys.stderr, flush=True)
                    if args.verbose and anomaly and o.report is not None:
                        print(str(o.report), file=sys.stderr, flush=True)
            print(f"[{strategy} {framework}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start

    plants = [planted(b, b.model, False) for b in bugs]
    render = markdown if args.markdown or args.write else plain
    tables = {
        "catalogue": catalogue(plants, args.frameworks, args.dtypes),
        "bugs": bug_rows(outcomes, args.frameworks, args.dtypes, args.strategies),
        "said": said_rows(outcomes, args.strategies),
    }
    correct = correct_rows(outcomes, args.frameworks, args.dtypes, args.strategies)
    bug_outcomes = [o for o in outcomes if o.bug]
    summary = [
        f"- {len(bug_outcomes)} buggy checks ({len({(o.bug, o.framework, o.dtype) for o in bug_outcomes})} distinct "
        f"bug instances, each with each strategy): kind named {sum(o.named for o in bug_outcomes)}, right tensor "
        f"blamed {sum(o.blamed_right for o in bug_outcomes)}, FAIL {sum(o.status == 'fail' for o in bug_outcomes)}.",
        f"- Correct gradients: {sum(o.status == 'fail' for o in outcomes if o.bug is None)} false FAILs, "
        f"{sum(o.status == 'inconclusive' for o in outcomes if o.bug is None)} inconclusive, of "
        f"{sum(o.bug is None for o in outcomes)} checks.",
        f"- Checks with a contradiction: {sum(bool(o.contradictions) for o in outcomes)}; errors: "
        f"{sum(o.status == 'error' for o in outcomes)}.",
        f"- FAILed tensors whose Taylor remainder slope reads right (>= {TAYLOR_RIGHT}): "
        f"{sum(len(o.taylor_right) for o in outcomes)}, in "
        f"{Counter(o.bug.table_kind for o in outcomes if o.taylor_right and o.bug).most_common() or 'no check'}.",
        f"- {len(outcomes)} checks, {sum(o.nfev for o in outcomes)} loss evaluations, {elapsed:.0f} s.",
    ]
    text = [
        "Bug instances (bug x dtype) per kind and framework:", "", render(tables["catalogue"]), "",
        "Cells: named / right tensor blamed / FAIL / run.", "", render(tables["bugs"]), "",
    ]  # fmt: skip
    if correct:
        text += [render(correct), ""]
    text += [render(tables["said"]), "", *summary]
    misses = unnamed(outcomes)
    if misses:
        text += ["", "Not named (the planted tensor's diagnosis; the count is of framework x dtype checks):", "", *misses]
    print("\n".join(text))

    if args.write:
        command = "python benchmarks/diagnosis.py " + " ".join(argv if argv is not None else sys.argv[1:])
        date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip() or datetime.datetime.now().isoformat()
        notable = [
            o for o in outcomes if o.error or o.contradictions or o.taylor_right or (o.bug is None and o.status != "pass")
        ]
        section = [
            "## Diagnosis",
            "",
            f"Command: `{command.strip()}`",
            f"Machine: {machine()}. Date: {date}. Code: gradprobe commit {git_commit()}.",
            "",
            "Does the report name the kind of a planted gradient bug? `benchmarks/diagnosis.py` plants each "
            "bug in one tensor's gradient (numpy: a hand-written `grad`; torch: a custom `autograd.Function`'s "
            "backward; JAX: a `jax.custom_vjp`'s backward) of five small models (an MLP, an MLP with a bias "
            "before a batch centering, a 1-D and a 2-D convolution, an attention block; batch m = 32), at a "
            "few hundred parameters for `strategy=\"full\"` and 1,000-2,000 for `strategy=\"directional\"`. "
            "*Named*: the planted tensor fails and its `diagnosis` contains the kind's phrase (the module's "
            "docstring lists them: \"2.00x\", \"(= 1/m, m=32)\", \"axes permuted (1, 0, 2)\", \"the gradient "
            "of W1\", the planted indices...). *Contra.*: checks where a diagnosis or hint is refuted by "
            "the numbers printed beside it.",
            "",
            *text,
        ]
        if notable:
            section += ["", "Contradictions, Taylor slopes reading right beside a FAIL, false FAILs and errors:", "", *[f"- {o.describe()}" for o in notable]]
        write_section(args.write, "## Diagnosis", "\n".join(section) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
