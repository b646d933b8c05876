"""Benchmark cases: ``jax.custom_vjp`` functions, each correct and with a planted bug.

Each case is a pair of ``jax.custom_vjp`` functions with hand-written fwd/bwd
rules.  The correct one passes
``jax.test_util.check_grads(fn, args, order=1, modes=["rev"])`` in float64;
the buggy one has a realistic mistake in the cotangent of exactly one argument
(``JaxOp.buggy_arg``) and fails it.

Importing this module does not touch global JAX configuration.  To get real
float64 arrays from ``make_args(jnp.float64)`` the caller must enable x64
(``jax.config.update("jax_enable_x64", True)``); otherwise JAX silently
produces float32.

This module is benchmark-only and imports jax at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["JaxOp", "ops"]


@dataclass(frozen=True)
class JaxOp:
    name: str
    fn: Callable
    buggy_fn: Callable
    bug: str
    buggy_arg: int
    make_args: Callable[[Any], tuple]  # dtype -> args (jnp arrays), seeded


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _arr(a: np.ndarray, dtype) -> jax.Array:
    return jnp.asarray(np.asarray(a, dtype=np.float64), dtype=dtype)


# --------------------------------------------------------------------------
# 1. clip(x, -1, 1) whose VJP is the true derivative (not straight-through)

_LO, _HI = -1.0, 1.0


def _clip_fwd(x):
    return jnp.clip(x, _LO, _HI), x


@jax.custom_vjp
def clip(x):
    return jnp.clip(x, _LO, _HI)


def _clip_bwd(x, g):
    inside = (x > _LO) & (x < _HI)
    return (jnp.where(inside, g, jnp.zeros_like(g)),)


clip.defvjp(_clip_fwd, _clip_bwd)


@jax.custom_vjp
def clip_buggy(x):
    return jnp.clip(x, _LO, _HI)


def _clip_buggy_bwd(x, g):
    return (g,)  # BUG: straight-through estimator used where the true derivative is wanted


clip_buggy.defvjp(_clip_fwd, _clip_buggy_bwd)


def _clip_args(dtype):
    r = _rng(201)
    # keep every entry at least 0.1 away from the clip boundaries
    mag = np.concatenate([r.uniform(0.0, 0.9, 6), r.uniform(1.1, 2.5, 6)])
    x = r.permutation(mag * r.choice([-1.0, 1.0], 12)).reshape(3, 4)
    return (_arr(x, dtype),)


# --------------------------------------------------------------------------
# 2. softplus


def _softplus(x):
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def _softplus_fwd(x):
    return _softplus(x), x


@jax.custom_vjp
def softplus(x):
    return _softplus(x)


softplus.defvjp(_softplus_fwd, lambda x, g: (g * jax.nn.sigmoid(x),))


@jax.custom_vjp
def softplus_buggy(x):
    return _softplus(x)


# BUG: 1/(1+exp(x)) is sigmoid(-x): wrong sign in the exponent
softplus_buggy.defvjp(_softplus_fwd, lambda x, g: (g / (1.0 + jnp.exp(x)),))


def _softplus_args(dtype):
    return (_arr(2.0 * _rng(202).standard_normal((3, 5)), dtype),)


# --------------------------------------------------------------------------
# 3. logsumexp over the last axis (non-scalar output)


def _lse(x):
    m = jnp.max(x, axis=-1, keepdims=True)
    return (m + jnp.log(jnp.sum(jnp.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def _lse_fwd(x):
    y = _lse(x)
    return y, (x, y)


@jax.custom_vjp
def logsumexp(x):
    return _lse(x)


logsumexp.defvjp(_lse_fwd, lambda res, g: (g[..., None] * jnp.exp(res[0] - res[1][..., None]),))


@jax.custom_vjp
def logsumexp_buggy(x):
    return _lse(x)


# BUG: cotangent collapsed to a scalar (g.sum()) instead of broadcast per row;
# only correct when the output is a scalar.
logsumexp_buggy.defvjp(
    _lse_fwd, lambda res, g: (jnp.sum(g) * jnp.exp(res[0] - res[1][..., None]),)
)


def _lse_args(dtype):
    return (_arr(2.0 * _rng(203).standard_normal((4, 6)), dtype),)


# --------------------------------------------------------------------------
# 4. safe row norm: ||x_i||, with a zero-safe VJP


def _row_norm(x):
    return jnp.sqrt(jnp.sum(x * x, axis=-1))


def _norm_fwd(x):
    n = _row_norm(x)
    return n, (x, n)


@jax.custom_vjp
def safe_norm(x):
    return _row_norm(x)


def _safe_norm_bwd(res, g):
    x, n = res
    safe_n = jnp.where(n > 0, n, 1.0)
    return (jnp.where(n[..., None] > 0, g[..., None] * x / safe_n[..., None], 0.0),)


safe_norm.defvjp(_norm_fwd, _safe_norm_bwd)


@jax.custom_vjp
def safe_norm_buggy(x):
    return _row_norm(x)


def _safe_norm_buggy_bwd(res, g):
    x, n = res
    n2 = jnp.where(n > 0, n * n, 1.0)
    # BUG: divides by the squared norm (derivative of ||x||^2/2 mixed up with ||x||)
    return (jnp.where(n[..., None] > 0, g[..., None] * x / n2[..., None], 0.0),)


safe_norm_buggy.defvjp(_norm_fwd, _safe_norm_buggy_bwd)


def _norm_args(dtype):
    return (_arr(_rng(204).standard_normal((4, 3)), dtype),)


# --------------------------------------------------------------------------
# 5. layer norm (x, gamma, beta) over the last axis

_LN_EPS = 1e-5


def _ln(x, gamma, beta):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, -1, keepdims=True)
    rstd = 1.0 / jnp.sqrt(var + _LN_EPS)
    xhat = (x - mu) * rstd
    return xhat * gamma + beta, (x - mu, xhat, rstd, gamma)


def _ln_fwd(x, gamma, beta):
    return _ln(x, gamma, beta)


@jax.custom_vjp
def layer_norm(x, gamma, beta):
    return _ln(x, gamma, beta)[0]


def _ln_bwd(res, g):
    xc, xhat, rstd, gamma = res
    dxhat = g * gamma
    dx = rstd * (
        dxhat
        - jnp.mean(dxhat, -1, keepdims=True)
        - xhat * jnp.mean(dxhat * xhat, -1, keepdims=True)
    )
    return dx, jnp.sum(g * xhat, 0), jnp.sum(g, 0)


layer_norm.defvjp(_ln_fwd, _ln_bwd)


@jax.custom_vjp
def layer_norm_buggy(x, gamma, beta):
    return _ln(x, gamma, beta)[0]


def _ln_buggy_bwd(res, g):
    xc, xhat, rstd, gamma = res
    dxhat = g * gamma
    dx = rstd * (
        dxhat
        - jnp.mean(dxhat, -1, keepdims=True)
        - xhat * jnp.mean(dxhat * xhat, -1, keepdims=True)
    )
    # BUG: dgamma uses the centred x (x - mean) instead of the normalised xhat
    return dx, jnp.sum(g * xc, 0), jnp.sum(g, 0)


layer_norm_buggy.defvjp(_ln_fwd, _ln_buggy_bwd)


def _ln_args(dtype):
    r = _rng(205)
    x = 1.5 * r.standard_normal((4, 6)) + 0.3
    gamma = 1.0 + 0.5 * r.standard_normal(6)
    beta = 0.5 * r.standard_normal(6)
    return _arr(x, dtype), _arr(gamma, dtype), _arr(beta, dtype)


# --------------------------------------------------------------------------
# 6. matmul + bias: y = x @ W + b


def _mm_fwd(x, W, b):
    return x @ W + b, (x, W)


@jax.custom_vjp
def matmul_bias(x, W, b):
    return x @ W + b


matmul_bias.defvjp(_mm_fwd, lambda res, g: (g @ res[1].T, res[0].T @ g, jnp.sum(g, 0)))


@jax.custom_vjp
def matmul_bias_buggy(x, W, b):
    return x @ W + b


# BUG: bias cotangent averaged over the batch instead of summed
matmul_bias_buggy.defvjp(
    _mm_fwd, lambda res, g: (g @ res[1].T, res[0].T @ g, jnp.mean(g, 0))
)


def _mm_args(dtype):
    r = _rng(206)
    return (
        _arr(r.standard_normal((4, 3)), dtype),
        _arr(r.standard_normal((3, 5)), dtype),
        _arr(r.standard_normal(5), dtype),
    )


# --------------------------------------------------------------------------
# 7. sort-weighted sum: sum(sort(x) * w)  (scalar output)


def _sws_fwd(x, w):
    perm = jnp.argsort(x)
    s = x[perm]
    return jnp.sum(s * w), (x, s, perm, w)


@jax.custom_vjp
def sort_weighted_sum(x, w):
    return jnp.sum(jnp.sort(x) * w)


def _sws_bwd(res, g):
    x, s, perm, w = res
    dx = jnp.zeros_like(x).at[perm].set(g * w)  # scatter through the permutation
    return dx, g * s


sort_weighted_sum.defvjp(_sws_fwd, _sws_bwd)


@jax.custom_vjp
def sort_weighted_sum_buggy(x, w):
    return jnp.sum(jnp.sort(x) * w)


def _sws_buggy_bwd(res, g):
    x, s, perm, w = res
    dx = jnp.zeros_like(x).at[perm].set(g * w)
    return dx, g * x  # BUG: dw uses the unsorted x instead of sort(x)


sort_weighted_sum_buggy.defvjp(_sws_fwd, _sws_buggy_bwd)


def _sws_args(dtype):
    r = _rng(207)
    n = 8
    # distinct values with gaps >= 0.3: no ties even after finite-difference steps
    x = 0.5 * r.permutation(n).astype(np.float64) - 2.0 + 0.2 * r.uniform(size=n)
    w = r.standard_normal(n)
    return _arr(x, dtype), _arr(w, dtype)


# --------------------------------------------------------------------------


def ops() -> list[JaxOp]:
    return [
        JaxOp("clip", clip, clip_buggy,
              "straight-through VJP (g passed unchanged) instead of true derivative 1{lo<x<hi}",
              0, _clip_args),
        JaxOp("softplus", softplus, softplus_buggy,
              "VJP uses 1/(1+exp(x)) = sigmoid(-x): wrong sign", 0, _softplus_args),
        JaxOp("logsumexp", logsumexp, logsumexp_buggy,
              "row cotangents collapsed to g.sum() instead of broadcast g[:, None]",
              0, _lse_args),
        JaxOp("safe_norm", safe_norm, safe_norm_buggy,
              "divides by ||x||^2 instead of ||x||", 0, _norm_args),
        JaxOp("layer_norm", layer_norm, layer_norm_buggy,
              "dgamma uses centred x (x - mean) instead of normalised xhat", 1, _ln_args),
        JaxOp("matmul_bias", matmul_bias, matmul_bias_buggy,
              "bias cotangent mean over batch instead of sum", 2, _mm_args),
        JaxOp("sort_weighted_sum", sort_weighted_sum, sort_weighted_sum_buggy,
              "dw uses unsorted x instead of sort(x)", 1, _sws_args),
    ]
