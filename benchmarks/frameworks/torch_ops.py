"""Benchmark cases: custom-gradient PyTorch ops, each correct and with a planted bug.

Every case is a pair of ``torch.autograd.Function`` subclasses with a
hand-written ``backward``, written the way PyTorch users write them.  The
correct Function passes ``torch.autograd.gradcheck`` in float64; the buggy one
has a realistic mistake in the gradient of exactly one input
(``TorchOp.buggy_input``) and fails gradcheck in float64.

Conventions worth knowing when using these cases:

* ``make_inputs(dtype)`` returns *fresh* leaf tensors each call (seeded, so
  the values are identical every time); differentiable inputs have
  ``requires_grad=True``.  Integer index tensors are fixed constants captured
  by ``fn``/``buggy_fn`` and are not part of the inputs.
* Outputs may be non-scalar; the checker is expected to use random
  cotangents.
* ``maxpool1d`` uses overlapping windows (kernel 3, stride 2) on inputs with
  no ties (values at least 0.1 apart), chosen so that several elements are
  the maximum of both windows they belong to; the buggy backward scatters
  with overwrite instead of accumulating, so those elements get the gradient
  of one window only.
* ``extra_cases()`` holds three single-function cases that are not part of
  the correct/buggy pairs, because no finite-difference checker can or should
  get them "right": ``maxpool1d_ties`` (exact 2-way ties at window maxima,
  backward splitting the gradient evenly, or routing it all to the first tied
  element as argmax-based backwards do -- at an exact tie both are valid
  one-sided derivatives) and ``leaky_relu_f32_slope`` (the leaky ReLU whose
  backward builds its slope with ``torch.where(x > 0, 1.0, 0.1)``, a float32
  tensor: in float64 its gradient is 1.5e-8 too large for x < 0, a real
  dtype bug below gradcheck's rtol).
* ``nondet_sum`` simulates an atomicAdd-style GPU reduction: the forward adds
  per-chunk partial sums (in the input dtype) in a random order on every call,
  so the result jitters in the last bits; the backward is exact.
* ``leaky_relu_near_kink`` / ``abs_near_kink`` have inputs within 1e-3..1e-2
  of the kink (far enough that gradcheck's eps=1e-6 does not straddle it).

This module is benchmark-only and imports torch at the top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["TorchCase", "TorchOp", "extra_cases", "ops"]


@dataclass(frozen=True)
class TorchOp:
    name: str
    fn: Callable[..., torch.Tensor | tuple]  # correct: calls CorrectFunction.apply(*inputs)
    buggy_fn: Callable[..., torch.Tensor | tuple]  # calls BuggyFunction.apply(*inputs)
    bug: str  # one-line description of the planted bug
    buggy_input: int  # index of the input whose gradient is wrong
    make_inputs: Callable[[torch.dtype], tuple]  # fresh, seeded inputs of the given dtype
    nondeterministic: bool = False


@dataclass(frozen=True)
class TorchCase:
    """One function on its own (no correct/buggy pair): what each checker says about it."""

    name: str
    fn: Callable[..., torch.Tensor | tuple]
    make_inputs: Callable[[torch.dtype], tuple]
    what: str  # what the backward does
    expected: str  # what a finite-difference checker can say, and why


# --------------------------------------------------------------------------
# helpers


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _leaf(t: torch.Tensor, dtype: torch.dtype, requires_grad: bool = True) -> torch.Tensor:
    """Cast a float64 master copy to ``dtype`` and make it a fresh leaf."""
    return t.detach().to(dtype).clone().requires_grad_(requires_grad)


def _near_kink_values(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Half of the entries within 1e-3..1e-2 of zero (either sign), rest ~N(0,1)."""
    g = _gen(seed)
    n = math.prod(shape)
    far = torch.randn(n, generator=g, dtype=torch.float64)
    mag = 10.0 ** (-3.0 + torch.rand(n, generator=g, dtype=torch.float64))
    sign = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    near = sign * mag
    pick = torch.arange(n) % 2 == 0
    x = torch.where(pick, near, far)
    # keep the "far" entries away from zero too
    x = torch.where(~pick & (x.abs() < 0.05), x + 0.1 * torch.sign(x + 1e-12), x)
    return x.reshape(shape)


# --------------------------------------------------------------------------
# 1. linear: y = x @ W.T + b


class LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x, g.sum(0)


class LinearBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        # BUG: weight gradient transposed (x.T @ g instead of g.T @ x);
        # shapes still match because W is square.
        return g @ W, x.T @ g, g.sum(0)


def _linear_inputs(dtype):
    g = _gen(101)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    W = torch.randn(3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    return _leaf(x, dtype), _leaf(W, dtype), _leaf(b, dtype)


# --------------------------------------------------------------------------
# 2. softplus


def _softplus(x):
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


class SoftplusFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _softplus(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)


class SoftplusBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _softplus(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(-x)  # BUG: wrong sign inside the sigmoid


def _softplus_inputs(dtype):
    x = 2.0 * torch.randn(3, 5, generator=_gen(102), dtype=torch.float64)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# 3. layer norm over the last dim, affine (gamma, beta)

_LN_EPS = 1e-5


def _ln_forward(ctx, x, gamma, beta):
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    rstd = torch.rsqrt(var + _LN_EPS)
    xhat = (x - mu) * rstd
    ctx.save_for_backward(xhat, rstd, gamma)
    return xhat * gamma + beta


class LayerNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta):
        return _ln_forward(ctx, x, gamma, beta)

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, gamma = ctx.saved_tensors
        dxhat = g * gamma
        dx = rstd * (
            dxhat
            - dxhat.mean(-1, keepdim=True)
            - xhat * (dxhat * xhat).mean(-1, keepdim=True)
        )
        return dx, (g * xhat).sum(0), g.sum(0)


class LayerNormBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta):
        return _ln_forward(ctx, x, gamma, beta)

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, gamma = ctx.saved_tensors
        dxhat = g * gamma
        # BUG: dropped the variance term -xhat * mean(dxhat * xhat)
        dx = rstd * (dxhat - dxhat.mean(-1, keepdim=True))
        return dx, (g * xhat).sum(0), g.sum(0)


def _layernorm_inputs(dtype):
    g = _gen(103)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64) * 1.5 + 0.3
    gamma = 1.0 + 0.5 * torch.randn(6, generator=g, dtype=torch.float64)
    beta = 0.5 * torch.randn(6, generator=g, dtype=torch.float64)
    return _leaf(x, dtype), _leaf(gamma, dtype), _leaf(beta, dtype)


# --------------------------------------------------------------------------
# 4. cumulative product along the last dim, inputs containing exact zeros


class CumprodFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.cumprod(x, dim=-1)

    @staticmethod
    def backward(ctx, g):
        # Careful (zero-safe) backward: dx_j = sum_{i>=j} g_i * prod_{k<=i, k!=j} x_k,
        # computed directly by replacing x_j with 1 (O(n^2), fine for small n).
        (x,) = ctx.saved_tensors
        n = x.shape[-1]
        dx = torch.zeros_like(x)
        for j in range(n):
            xj = x.clone()
            xj[..., j] = 1.0
            p = torch.cumprod(xj, dim=-1)
            dx[..., j] = (g[..., j:] * p[..., j:]).sum(-1)
        return dx


class CumprodBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.cumprod(x, dim=-1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        # BUG: textbook reverse_cumsum(g*y)/x with a "safe" division that
        # returns 0 where x == 0 -- the gradient at zero entries is wrong.
        x, y = ctx.saved_tensors
        rcs = torch.flip(torch.cumsum(torch.flip(g * y, [-1]), -1), [-1])
        safe_x = torch.where(x == 0, torch.ones_like(x), x)
        return torch.where(x == 0, torch.zeros_like(x), rcs / safe_x)


def _cumprod_inputs(dtype):
    g = _gen(104)
    mag = 0.6 + 0.8 * torch.rand(3, 6, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(3, 6, generator=g, dtype=torch.float64) < 0.3, -1.0, 1.0)
    x = mag * sign
    x[0, 2] = 0.0
    x[1, 4] = 0.0
    x[2, 1] = 0.0
    x[2, 3] = 0.0  # two zeros in one row
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# 5. sort-based op: y = sort(x) * w  (elementwise, 1-D)


class SortWeightedFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        s, perm = torch.sort(x)
        ctx.save_for_backward(s, perm, w)
        return s * w

    @staticmethod
    def backward(ctx, g):
        s, perm, w = ctx.saved_tensors
        dx = torch.zeros_like(s)
        dx[perm] = g * w  # scatter back through the permutation (perm is a bijection)
        return dx, g * s


class SortWeightedBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        s, perm = torch.sort(x)
        ctx.save_for_backward(s, perm, w)
        return s * w

    @staticmethod
    def backward(ctx, g):
        s, perm, w = ctx.saved_tensors
        # BUG: gathers with the permutation instead of scattering
        # (applies perm where its inverse is needed).
        return (g * w)[perm], g * s


def _sort_inputs(dtype):
    g = _gen(105)
    n = 8
    # distinct values with gaps >= 0.3 so no ties, even in float32
    x = 0.5 * torch.randperm(n, generator=g).to(torch.float64) - 2.0
    x = x + 0.2 * torch.rand(n, generator=g, dtype=torch.float64)
    w = torch.randn(n, generator=g, dtype=torch.float64)
    return _leaf(x, dtype), _leaf(w, dtype)


# --------------------------------------------------------------------------
# 6. gather with duplicate indices: y = x[idx]

_GATHER_IDX = torch.tensor([1, 3, 3, 0, 4, 3, 1])


class GatherDupFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.n = x.shape[0]
        return x.index_select(0, idx)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        dx = g.new_zeros((ctx.n,) + g.shape[1:])
        dx.index_add_(0, idx, g)  # accumulates over duplicate indices
        return dx, None


class GatherDupBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.n = x.shape[0]
        return x.index_select(0, idx)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        dx = g.new_zeros((ctx.n,) + g.shape[1:])
        dx[idx] = g  # BUG: plain assignment, duplicates overwrite instead of accumulating
        return dx, None


def _gather_inputs(dtype):
    x = torch.randn(5, 3, generator=_gen(106), dtype=torch.float64)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# 7. index_add (scatter-add) with duplicate destination indices

_INDEX_ADD_IDX = torch.tensor([0, 2, 2, 4, 1, 2, 0, 3])


class IndexAddDupFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, base, src, idx):
        ctx.save_for_backward(idx)
        return base.index_add(0, idx, src)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        return g, g.index_select(0, idx), None


class IndexAddDupBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, base, src, idx):
        ctx.save_for_backward(idx)
        return base.index_add(0, idx, src)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        # BUG: "duplicates share the output", so the gradient is divided by
        # the multiplicity of the destination index.
        counts = torch.bincount(idx, minlength=g.shape[0]).to(g.dtype)
        dsrc = g.index_select(0, idx) / counts[idx].unsqueeze(-1)
        return g, dsrc, None


def _index_add_inputs(dtype):
    g = _gen(107)
    base = torch.randn(5, 3, generator=g, dtype=torch.float64)
    src = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return _leaf(base, dtype), _leaf(src, dtype)


# --------------------------------------------------------------------------
# 8. max-pool 1-D with overlapping windows (kernel 3, stride 2), no ties

_POOL_K, _POOL_STRIDE = 3, 2


class MaxPool1dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        windows = x.unfold(-1, _POOL_K, _POOL_STRIDE)  # (B, W, K)
        y, arg = windows.max(-1)
        starts = torch.arange(windows.shape[-2]) * _POOL_STRIDE
        ctx.save_for_backward(arg + starts)  # index of each window's maximum in x
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        # An element that is the maximum of two overlapping windows gets both gradients.
        return g.new_zeros(ctx.shape).scatter_add_(-1, index, g)


class MaxPool1dBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return MaxPool1dFn.forward(ctx, x)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        # BUG: scatter (overwrite) instead of scatter_add: an element that is the maximum of
        # two overlapping windows keeps the gradient of one of them only.
        return g.new_zeros(ctx.shape).scatter_(-1, index, g)


def _pool_inputs(dtype):
    g = _gen(108)
    B, L = 2, 15  # 7 windows of 3, stride 2
    x = 0.25 * torch.stack([torch.randperm(L, generator=g) for _ in range(B)]).to(torch.float64) - 2.0
    x = x + 0.05 * torch.rand(B, L, generator=g, dtype=torch.float64)  # values >= 0.2 apart: no ties
    # Window boundaries (even positions) that are the maximum of both windows sharing them.
    for row, shared in enumerate(((2, 6, 10), (4, 8, 12))):
        for k, j in enumerate(shared):
            x[row, j] = 2.5 + 0.3 * k + 0.05 * torch.rand((), generator=g, dtype=torch.float64)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# extra: max-pool 1-D (kernel 3, stride 3) with exact 2-way ties (see the module docstring)

_TIES_K = 3


def _ties_forward(ctx, x):
    B, L = x.shape
    xw = x.reshape(B, L // _TIES_K, _TIES_K)
    y = xw.max(-1).values
    ctx.save_for_backward(xw, y)
    ctx.shape = x.shape
    return y


class MaxPoolTiesEvenFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return _ties_forward(ctx, x)

    @staticmethod
    def backward(ctx, g):
        xw, y = ctx.saved_tensors
        mask = (xw == y.unsqueeze(-1)).to(g.dtype)
        dx = mask * (g / mask.sum(-1)).unsqueeze(-1)  # split evenly among ties
        return dx.reshape(ctx.shape)


class MaxPoolTiesFirstFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return _ties_forward(ctx, x)

    @staticmethod
    def backward(ctx, g):
        xw, y = ctx.saved_tensors
        mask = xw == y.unsqueeze(-1)
        # All of the gradient to the first tied element (argmax style): at an exact tie the
        # one-sided derivatives are 0 and 1, so this is as valid as the even split.
        first = mask & (mask.cumsum(-1) == 1)
        dx = first.to(g.dtype) * g.unsqueeze(-1)
        return dx.reshape(ctx.shape)


def _ties_inputs(dtype):
    g = _gen(108)
    B, W = 2, 5
    rows = []
    for b in range(B):
        row = []
        for w in range(W):
            # three distinct multiples of 0.5 (exact in every float dtype)
            vals = 0.5 * torch.randperm(10, generator=g)[:_TIES_K].to(torch.float64) - 2.0
            if (b * W + w) % 2 == 0:  # make an exact 2-way tie at the maximum
                order = torch.argsort(vals, descending=True)
                vals[order[1]] = vals[order[0]]
            row.append(vals)
        rows.append(torch.cat(row))
    x = torch.stack(rows)  # (2, 15)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# 9. atomicAdd-like non-deterministic row sum

_ND_CHUNK = 8
_nd_rng = np.random.default_rng()  # deliberately unseeded: order differs every call


def _nondet_row_sum(x):
    B, L = x.shape
    partials = x.reshape(B, L // _ND_CHUNK, _ND_CHUNK).sum(-1)  # (B, n_chunks), input dtype
    acc = torch.zeros(B, dtype=x.dtype)
    for i in _nd_rng.permutation(partials.shape[1]):
        acc = acc + partials[:, int(i)]
    return acc


class NondetSumFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return _nondet_row_sum(x)

    @staticmethod
    def backward(ctx, g):
        return g.unsqueeze(-1).expand(ctx.shape).clone()


class NondetSumBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return _nondet_row_sum(x)

    @staticmethod
    def backward(ctx, g):
        # BUG: backward of a mean, not a sum (divides by the row length)
        return g.unsqueeze(-1).expand(ctx.shape) / ctx.shape[-1]


def _nondet_inputs(dtype):
    g = _gen(109)
    # magnitudes spread over several decades so that the summation order
    # visibly changes the last bits of the result
    mag = 10.0 ** (4.0 * torch.rand(4, 64, generator=g, dtype=torch.float64) - 2.0)
    x = mag * torch.randn(4, 64, generator=g, dtype=torch.float64)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# 10. leaky relu with inputs near the kink

_LEAK = 0.1


class LeakyReluFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, _LEAK * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        # The slope in x's own dtype: torch.where(x > 0, 1.0, 0.1) would be a float32 tensor,
        # whose 0.1 is 1.5e-8 off in float64 (see LeakyReluF32SlopeFn).
        return g * torch.where(x > 0, torch.ones_like(x), torch.full_like(x, _LEAK))


class LeakyReluBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, _LEAK * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype)  # BUG: plain-ReLU mask, negative slope dropped


class LeakyReluF32SlopeFn(torch.autograd.Function):
    """The leaky ReLU as first written here: its slope tensor is float32 whatever x's dtype."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, _LEAK * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        # Two Python scalars make a float32 tensor: 0.1 becomes 0.10000000149 (1.5e-8 relative).
        return g * torch.where(x > 0, 1.0, _LEAK).to(g.dtype)


def _leaky_inputs(dtype):
    return (_leaf(_near_kink_values(110, (3, 6)), dtype),)


# --------------------------------------------------------------------------
# 11. abs with inputs near the kink


class AbsFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.abs()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sign(x)


class AbsBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.abs()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * torch.sign(y)  # BUG: sign of the saved output (always +1), not of x


def _abs_inputs(dtype):
    return (_leaf(_near_kink_values(111, (3, 6)), dtype),)


# --------------------------------------------------------------------------
# 12. sigmoid


def _sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


class SigmoidFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = _sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1.0 - y)


class SigmoidBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = _sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        s = _sigmoid(y)  # BUG: derivative formula s(.)(1-s(.)) applied to the output, not x
        return g * s * (1.0 - s)


def _sigmoid_inputs(dtype):
    x = 2.0 * torch.randn(4, 5, generator=_gen(112), dtype=torch.float64)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------
# 13. attention scores: softmax(q @ k.T / sqrt(d))


class AttnSoftmaxFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k):
        scale = 1.0 / math.sqrt(q.shape[-1])
        p = torch.softmax(q @ k.T * scale, dim=-1)
        ctx.save_for_backward(q, k, p)
        ctx.scale = scale
        return p

    @staticmethod
    def backward(ctx, g):
        q, k, p = ctx.saved_tensors
        ds = p * (g - (g * p).sum(-1, keepdim=True)) * ctx.scale
        return ds @ k, ds.T @ q


class AttnSoftmaxBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k):
        scale = 1.0 / math.sqrt(q.shape[-1])
        p = torch.softmax(q @ k.T * scale, dim=-1)
        ctx.save_for_backward(q, k, p)
        ctx.scale = scale
        return p

    @staticmethod
    def backward(ctx, g):
        q, k, p = ctx.saved_tensors
        ds = p * (g - (g * p).sum(-1, keepdim=True))
        # BUG: 1/sqrt(d) scale applied to dq but forgotten for dk
        return ds @ k * ctx.scale, ds.T @ q


def _attn_inputs(dtype):
    g = _gen(113)
    q = torch.randn(3, 4, generator=g, dtype=torch.float64)
    k = torch.randn(5, 4, generator=g, dtype=torch.float64)
    return _leaf(q, dtype), _leaf(k, dtype)


# --------------------------------------------------------------------------
# 14. MSE loss (scalar output)


class MSEFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred, target):
        diff = pred - target
        ctx.save_for_backward(diff)
        return (diff * diff).mean()

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        d = g * 2.0 * diff / diff.numel()
        return d, -d


class MSEBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred, target):
        diff = pred - target
        ctx.save_for_backward(diff)
        return (diff * diff).mean()

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        # BUG: factor 2 of d(diff^2) missing in the prediction gradient
        return g * diff / diff.numel(), -g * 2.0 * diff / diff.numel()


def _mse_inputs(dtype):
    g = _gen(114)
    pred = torch.randn(6, 3, generator=g, dtype=torch.float64)
    target = torch.randn(6, 3, generator=g, dtype=torch.float64)
    return _leaf(pred, dtype), _leaf(target, dtype)


# --------------------------------------------------------------------------
# 15. log-sum-exp over the last dim


class LogSumExpFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        m = x.max(-1, keepdim=True).values
        y = (m + torch.log(torch.exp(x - m).sum(-1, keepdim=True))).squeeze(-1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g.unsqueeze(-1) * torch.exp(x - y.unsqueeze(-1))


class LogSumExpBuggyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        m = x.max(-1, keepdim=True).values
        y = (m + torch.log(torch.exp(x - m).sum(-1, keepdim=True))).squeeze(-1)
        ctx.save_for_backward(x, m)
        return y

    @staticmethod
    def backward(ctx, g):
        x, m = ctx.saved_tensors
        # BUG: exp(x - max) without dividing by the sum -- softmax not normalised
        return g.unsqueeze(-1) * torch.exp(x - m)


def _lse_inputs(dtype):
    x = 2.0 * torch.randn(4, 7, generator=_gen(115), dtype=torch.float64)
    return (_leaf(x, dtype),)


# --------------------------------------------------------------------------


def ops() -> list[TorchOp]:
    return [
        TorchOp(
            "linear",
            lambda x, W, b: LinearFn.apply(x, W, b),
            lambda x, W, b: LinearBuggyFn.apply(x, W, b),
            "weight gradient transposed: x.T @ g instead of g.T @ x (W is square)",
            1,
            _linear_inputs,
        ),
        TorchOp(
            "softplus",
            lambda x: SoftplusFn.apply(x),
            lambda x: SoftplusBuggyFn.apply(x),
            "wrong sign: sigmoid(-x) instead of sigmoid(x)",
            0,
            _softplus_inputs,
        ),
        TorchOp(
            "layer_norm",
            lambda x, gm, bt: LayerNormFn.apply(x, gm, bt),
            lambda x, gm, bt: LayerNormBuggyFn.apply(x, gm, bt),
            "dx misses the variance term -xhat*mean(dxhat*xhat)",
            0,
            _layernorm_inputs,
        ),
        TorchOp(
            "cumprod",
            lambda x: CumprodFn.apply(x),
            lambda x: CumprodBuggyFn.apply(x),
            "reverse_cumsum(g*y)/x with 'safe' division: gradient 0 at the zero entries",
            0,
            _cumprod_inputs,
        ),
        TorchOp(
            "sort_weighted",
            lambda x, w: SortWeightedFn.apply(x, w),
            lambda x, w: SortWeightedBuggyFn.apply(x, w),
            "dx gathered with perm instead of scattered (inverse permutation mixed up)",
            0,
            _sort_inputs,
        ),
        TorchOp(
            "gather_dup",
            lambda x: GatherDupFn.apply(x, _GATHER_IDX),
            lambda x: GatherDupBuggyFn.apply(x, _GATHER_IDX),
            "dx[idx] = g overwrites at duplicate indices instead of accumulating",
            0,
            _gather_inputs,
        ),
        TorchOp(
            "index_add_dup",
            lambda base, src: IndexAddDupFn.apply(base, src, _INDEX_ADD_IDX),
            lambda base, src: IndexAddDupBuggyFn.apply(base, src, _INDEX_ADD_IDX),
            "d(src) divided by the multiplicity of its (duplicate) destination index",
            1,
            _index_add_inputs,
        ),
        TorchOp(
            "maxpool1d",
            lambda x: MaxPool1dFn.apply(x),
            lambda x: MaxPool1dBuggyFn.apply(x),
            "scatter instead of scatter_add: a maximum shared by two overlapping windows gets one gradient",
            0,
            _pool_inputs,
        ),
        TorchOp(
            "nondet_sum",
            lambda x: NondetSumFn.apply(x),
            lambda x: NondetSumBuggyFn.apply(x),
            "backward of a mean instead of a sum (divided by row length 64)",
            0,
            _nondet_inputs,
            nondeterministic=True,
        ),
        TorchOp(
            "leaky_relu_near_kink",
            lambda x: LeakyReluFn.apply(x),
            lambda x: LeakyReluBuggyFn.apply(x),
            "ReLU mask in backward: negative slope 0.1 dropped (gradient 0 for x<0)",
            0,
            _leaky_inputs,
        ),
        TorchOp(
            "abs_near_kink",
            lambda x: AbsFn.apply(x),
            lambda x: AbsBuggyFn.apply(x),
            "sign taken from the saved output |x| (always +1) instead of x",
            0,
            _abs_inputs,
        ),
        TorchOp(
            "sigmoid",
            lambda x: SigmoidFn.apply(x),
            lambda x: SigmoidBuggyFn.apply(x),
            "s(1-s) evaluated at s=sigmoid(y) (output fed to the derivative formula)",
            0,
            _sigmoid_inputs,
        ),
        TorchOp(
            "attention_softmax",
            lambda q, k: AttnSoftmaxFn.apply(q, k),
            lambda q, k: AttnSoftmaxBuggyFn.apply(q, k),
            "1/sqrt(d) scale forgotten in dk (applied only to dq)",
            1,
            _attn_inputs,
        ),
        TorchOp(
            "mse_loss",
            lambda p, t: MSEFn.apply(p, t),
            lambda p, t: MSEBuggyFn.apply(p, t),
            "factor 2 missing in d/dpred (target gradient correct)",
            0,
            _mse_inputs,
        ),
        TorchOp(
            "logsumexp",
            lambda x: LogSumExpFn.apply(x),
            lambda x: LogSumExpBuggyFn.apply(x),
            "uses exp(x - max) without normalising by the sum (unnormalised softmax)",
            0,
            _lse_inputs,
        ),
    ]


def extra_cases() -> list[TorchCase]:
    """Cases outside the correct/buggy pairs: what each checker says, not a score."""
    return [
        TorchCase(
            "maxpool1d_ties, even split",
            lambda x: MaxPoolTiesEvenFn.apply(x),
            _ties_inputs,
            "exact 2-way ties at window maxima; backward splits a tied maximum's gradient 1/2-1/2",
            "no verdict: at an exact tie the loss has a kink (one-sided derivatives 0 and 1)",
        ),
        TorchCase(
            "maxpool1d_ties, argmax",
            lambda x: MaxPoolTiesFirstFn.apply(x),
            _ties_inputs,
            "the same ties; backward routes a tied maximum's gradient to the first tied element",
            "no verdict: an equally valid one-sided derivative at the same kinks",
        ),
        TorchCase(
            "leaky_relu_f32_slope",
            lambda x: LeakyReluF32SlopeFn.apply(x),
            _leaky_inputs,
            "slope built with torch.where(x > 0, 1.0, 0.1), a float32 tensor",
            "FAIL in float64 (slope 1.5e-8 too large for x < 0), pass in float32 (exact there)",
        ),
    ]
