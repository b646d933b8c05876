"""A suite of hand-differentiated losses with correct gradients and planted bugs.

Every :class:`Case` is a small loss of the kind people differentiate by hand
(MLPs, softmax cross-entropy, layer/batch norm, convolutions, attention, RNNs,
regression losses, ...) together with a *correct* analytic gradient written in
plain numpy.  Every :class:`Bug` is a realistic mistake in one of those
gradients, confined to exactly one parameter tensor: a constant factor, a
missing ``1/m``, a sign flip, a transposed square weight gradient, exactly one
wrong element, or a small relative error (about 1e-3 or 1e-6).

Conventions
-----------
* ``Case.loss(params)`` returns a 0-d numpy scalar of the parameters' dtype;
  ``Case.grad(params)`` returns a fresh ``dict`` with the same keys and shapes.
  Neither mutates its argument.
* The computation runs in the parameters' dtype: data (inputs, targets) are
  stored in float64 and cast, once per dtype, to the dtype of the parameters
  passed in.  ``cases(np.float32)`` therefore gives float32 computations.
* All data and parameters come from a fixed ``np.random.default_rng(seed)``
  per case, so every call of :func:`cases` returns identical values.
* Non-smooth cases (relu, max-pool, abs, Huber) are evaluated at points that
  are at least ``_MARGIN`` away from every kink.
* ``Bug.size`` is ``||g_bug[t] - g[t]|| / ||g[t]||`` for the bug's tensor ``t``
  (Frobenius norms of that one tensor), computed on the float64 parameters.
  All other tensors of a buggy gradient are exactly the correct ones.
* Parameters all have ``ndim >= 1`` (biases of one unit have shape ``(1,)``).

Only numpy is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Case", "Bug", "cases", "bugs", "case_names", "BUG_KINDS"]

BUG_KINDS = ("factor", "missing_1/m", "sign", "transpose", "one_element", "relative")

# Minimum distance of any kink argument (relu pre-activation, max-pool gap,
# abs argument, Huber |r| - delta) from its kink at the evaluation point.
_MARGIN = 2e-3


@dataclass(frozen=True)
class Case:
    name: str                      # e.g. "mlp_relu"
    loss: Callable[[dict], float]  # loss(params) -> python float or 0-d numpy scalar
    grad: Callable[[dict], dict]   # grad(params) -> dict with the same keys as params, same shapes
    params: dict[str, np.ndarray]  # parameters, dtype as requested


@dataclass(frozen=True)
class Bug:
    case: str          # the Case.name it mutates
    kind: str          # one of BUG_KINDS
    tensor: str        # the parameter key whose gradient is wrong
    size: float        # ||g_bug - g|| / ||g|| on that tensor, float64 params
    grad: Callable[[dict], dict]  # the buggy gradient


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _dtype_of(p: dict) -> np.dtype:
    return np.result_type(*(v.dtype for v in p.values()))


class _NS:
    def __init__(self, d: dict):
        self.__dict__.update(d)


class _Data:
    """Case data stored in float64, handed out cast to the params' dtype."""

    def __init__(self, **arrays):
        self._base = {}
        for k, v in arrays.items():
            a = np.array(v)  # own copy
            a.flags.writeable = False
            self._base[k] = a
        self._cache: dict = {}

    def __call__(self, p: dict) -> _NS:
        dt = _dtype_of(p)
        ns = self._cache.get(dt)
        if ns is None:
            d = {}
            for k, v in self._base.items():
                if v.dtype.kind == "f":
                    v = v.astype(dt)
                    v.flags.writeable = False
                d[k] = v
            ns = self._cache[dt] = _NS(d)
        return ns


def _cast(params: dict, dtype) -> dict:
    return {k: np.array(v, dtype=dtype) for k, v in params.items()}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(z, axis=-1):
    mx = z.max(axis=axis, keepdims=True)
    return (mx + np.log(np.exp(z - mx).sum(axis=axis, keepdims=True))).squeeze(axis)


class _Spec:
    """A bug before its size is known."""

    __slots__ = ("kind", "tensor", "grad")

    def __init__(self, kind: str, tensor: str, grad: Callable[[dict], dict]):
        assert kind in BUG_KINDS, kind
        self.kind, self.tensor, self.grad = kind, tensor, grad


def _with_bug(grad, bug):
    def g(p):
        return grad(p, bug)
    return g


# Generic post-hoc mutations, used for the small relative errors and for
# "one element" bugs (a wrong entry, e.g. a typo in one index of a loop).

def _scaled(grad, tensor, factor):
    """g[tensor] * factor: e.g. a constant typed with too few digits."""
    def g(p):
        out = grad(p)
        out[tensor] = out[tensor] * factor
        return out
    return g


def _noisy(grad, tensor, rel, seed):
    """g[tensor] + rel * ||g[tensor]|| * u / ||u|| for a fixed random direction u."""
    def g(p):
        out = grad(p)
        t = out[tensor]
        u = np.random.default_rng(seed).standard_normal(t.shape)
        u = (u / np.linalg.norm(u)).astype(t.dtype)
        out[tensor] = t + (rel * np.linalg.norm(t)) * u
        return out
    return g


def _one_element(grad, tensor, index, frac=0.1):
    """One entry off by frac * RMS of the tensor (a wrong index somewhere)."""
    def g(p):
        out = grad(p)
        t = out[tensor].copy()
        t[index] += frac * np.sqrt(np.mean(t * t))
        out[tensor] = t
        return out
    return g


def _zero_last(grad, tensor):
    """Off-by-one loop: the last entry of the tensor's gradient is never filled."""
    def g(p):
        out = grad(p)
        t = out[tensor].copy()
        t.reshape(-1)[-1] = 0
        out[tensor] = t
        return out
    return g


def _draw_until(draw, ok, tries=1000):
    for _ in range(tries):
        v = draw()
        if ok(v):
            return v
    raise RuntimeError("could not draw a point away from the kinks")


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

def _linreg_mse(dtype):
    """Multi-output linear regression, 1/(2m) * ||XW + b - Y||^2, square W."""
    rng = np.random.default_rng(1001)
    m, d = 32, 6
    X = rng.standard_normal((m, d))
    Y = X @ rng.standard_normal((d, d)) + 0.3 * rng.standard_normal((m, d)) + 0.5
    P = {"W": 0.5 * rng.standard_normal((d, d)), "b": 0.1 * rng.standard_normal(d)}
    D = _Data(X=X, Y=Y)

    def loss(p):
        s = D(p)
        R = s.X @ p["W"] + p["b"] - s.Y
        return 0.5 / m * np.sum(R * R)

    def grad(p, bug=None):
        s = D(p)
        R = s.X @ p["W"] + p["b"] - s.Y
        dW = s.X.T @ R / m
        if bug == "transpose":
            dW = R.T @ s.X / m
        db = R.sum(axis=0) / m
        if bug == "no_m":
            db = R.sum(axis=0)
        return {"W": dW, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("transpose", "W", _with_bug(grad, "transpose")),
        _Spec("missing_1/m", "b", _with_bug(grad, "no_m")),
        _Spec("relative", "W", _noisy(g0, "W", 1e-3, 11)),
    ]
    return Case("linreg_mse", loss, g0, _cast(P, dtype)), specs


def _logreg(dtype):
    """Binary logistic regression, mean BCE with logits."""
    rng = np.random.default_rng(1002)
    m, d = 40, 8
    X = rng.standard_normal((m, d))
    wt = rng.standard_normal(d)
    y = (rng.random(m) < _sigmoid(X @ wt + 0.3)).astype(np.float64)
    P = {"w": 0.3 * rng.standard_normal(d), "b": np.array([0.1])}
    D = _Data(X=X, y=y)

    def loss(p):
        s = D(p)
        z = s.X @ p["w"] + p["b"]
        return np.mean(np.logaddexp(0.0, z) - s.y * z)

    def grad(p, bug=None):
        s = D(p)
        z = s.X @ p["w"] + p["b"]
        a = _sigmoid(z)
        dz = (a - s.y) / m
        dw = s.X.T @ dz
        if bug == "no_m":
            dw = s.X.T @ (a - s.y)
        db = dz.sum(keepdims=True)
        if bug == "sign":
            db = ((s.y - a) / m).sum(keepdims=True)
        return {"w": dw, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("sign", "b", _with_bug(grad, "sign")),
        _Spec("missing_1/m", "w", _with_bug(grad, "no_m")),
        _Spec("relative", "w", _scaled(g0, "w", 1 + 1e-6)),
    ]
    return Case("logreg", loss, g0, _cast(P, dtype)), specs


def _l2_mlp(dtype):
    """relu -> sigmoid MLP with BCE + lambd/(2m) * sum ||W||^2 (deeplearning.ai style)."""
    rng = np.random.default_rng(1003)
    m, n0, n1 = 24, 5, 8
    lambd = 0.7
    X = rng.standard_normal((m, n0))
    Y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.float64).reshape(m, 1)

    def draw():
        return {"W1": rng.standard_normal((n0, n1)) * math.sqrt(2.0 / n0),
                "b1": 0.1 * rng.standard_normal(n1),
                "W2": rng.standard_normal((n1, 1)) * math.sqrt(1.0 / n1),
                "b2": 0.1 * rng.standard_normal(1)}

    P = _draw_until(draw, lambda q: np.abs(X @ q["W1"] + q["b1"]).min() > _MARGIN)
    D = _Data(X=X, Y=Y)

    def fwd(p, s):
        Z1 = s.X @ p["W1"] + p["b1"]
        A1 = np.maximum(Z1, 0)
        A2 = _sigmoid(A1 @ p["W2"] + p["b2"])
        return Z1, A1, A2

    def loss(p):
        s = D(p)
        _, _, A2 = fwd(p, s)
        ce = -np.mean(s.Y * np.log(A2) + (1 - s.Y) * np.log(1 - A2))
        l2 = lambd / (2 * m) * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
        return ce + l2

    def grad(p, bug=None):
        s = D(p)
        Z1, A1, A2 = fwd(p, s)
        dZ2 = (A2 - s.Y) / m
        dW2 = A1.T @ dZ2 + lambd / m * p["W2"]
        if bug == "reg_factor":          # forgot the 1/2 of lambd/(2m)
            dW2 = A1.T @ dZ2 + 2 * lambd / m * p["W2"]
        db2 = dZ2.sum(axis=0)
        dZ1 = (dZ2 @ p["W2"].T) * (Z1 > 0)
        dW1 = s.X.T @ dZ1 + lambd / m * p["W1"]
        if bug == "reg_no_m":            # regulariser gradient without 1/m
            dW1 = s.X.T @ dZ1 + lambd * p["W1"]
        db1 = dZ1.sum(axis=0)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("factor", "W2", _with_bug(grad, "reg_factor")),
        _Spec("missing_1/m", "W1", _with_bug(grad, "reg_no_m")),
        _Spec("relative", "W2", _noisy(g0, "W2", 1e-3, 31)),
        _Spec("one_element", "b1", _one_element(g0, "b1", 5)),
    ]
    return Case("l2_mlp", loss, g0, _cast(P, dtype)), specs


def _mlp_relu(dtype):
    """Two relu hidden layers (12x12 middle weight), linear output, MSE."""
    rng = np.random.default_rng(1004)
    m, n0, n1, n2, n3 = 16, 6, 12, 12, 3
    X = rng.standard_normal((m, n0))
    Y = rng.standard_normal((m, n3))

    def draw():
        return {"W1": rng.standard_normal((n0, n1)) * math.sqrt(2.0 / n0),
                "b1": 0.1 * rng.standard_normal(n1),
                "W2": rng.standard_normal((n1, n2)) * math.sqrt(2.0 / n1),
                "b2": 0.1 * rng.standard_normal(n2),
                "W3": rng.standard_normal((n2, n3)) * math.sqrt(1.0 / n2),
                "b3": 0.1 * rng.standard_normal(n3)}

    def ok(q):
        Z1 = X @ q["W1"] + q["b1"]
        Z2 = np.maximum(Z1, 0) @ q["W2"] + q["b2"]
        return min(np.abs(Z1).min(), np.abs(Z2).min()) > _MARGIN

    P = _draw_until(draw, ok)
    D = _Data(X=X, Y=Y)

    def fwd(p, s):
        Z1 = s.X @ p["W1"] + p["b1"]
        A1 = np.maximum(Z1, 0)
        Z2 = A1 @ p["W2"] + p["b2"]
        A2 = np.maximum(Z2, 0)
        O = A2 @ p["W3"] + p["b3"]
        return Z1, A1, Z2, A2, O

    def loss(p):
        s = D(p)
        O = fwd(p, s)[-1]
        return 0.5 / m * np.sum((O - s.Y) ** 2)

    def grad(p, bug=None):
        s = D(p)
        Z1, A1, Z2, A2, O = fwd(p, s)
        dO = (O - s.Y) / m
        dW3 = A2.T @ dO
        if bug == "factor":  # d/dO of (O-Y)^2 without the 1/2 of the loss
            dW3 = A2.T @ (2 * dO)
        db3 = dO.sum(axis=0)
        dZ2 = (dO @ p["W3"].T) * (Z2 > 0)
        dW2 = A1.T @ dZ2
        if bug == "transpose":
            dW2 = dZ2.T @ A1
        db2 = dZ2.sum(axis=0)
        dZ1 = (dZ2 @ p["W2"].T) * (Z1 > 0)
        dW1 = s.X.T @ dZ1
        db1 = dZ1.sum(axis=0)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("transpose", "W2", _with_bug(grad, "transpose")),
        _Spec("factor", "W3", _with_bug(grad, "factor")),
        _Spec("one_element", "b1", _zero_last(g0, "b1")),
        _Spec("one_element", "W1", _one_element(g0, "W1", (2, 3))),
        _Spec("relative", "W1", _noisy(g0, "W1", 1e-6, 41)),
    ]
    return Case("mlp_relu", loss, g0, _cast(P, dtype)), specs


def _mlp_tanh(dtype):
    """Two tanh hidden layers (10x10 middle weight), linear output, MSE."""
    rng = np.random.default_rng(1005)
    m, n0, n1, n2, n3 = 20, 5, 10, 10, 2
    X = rng.standard_normal((m, n0))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], np.cos(X[:, 3]) - X[:, 4]], axis=1)
    P = {"W1": rng.standard_normal((n0, n1)) / math.sqrt(n0),
         "b1": 0.1 * rng.standard_normal(n1),
         "W2": rng.standard_normal((n1, n2)) / math.sqrt(n1),
         "b2": 0.1 * rng.standard_normal(n2),
         "W3": rng.standard_normal((n2, n3)) / math.sqrt(n2),
         "b3": 0.1 * rng.standard_normal(n3)}
    D = _Data(X=X, Y=Y)

    def fwd(p, s):
        A1 = np.tanh(s.X @ p["W1"] + p["b1"])
        A2 = np.tanh(A1 @ p["W2"] + p["b2"])
        O = A2 @ p["W3"] + p["b3"]
        return A1, A2, O

    def loss(p):
        s = D(p)
        O = fwd(p, s)[-1]
        return 0.5 / m * np.sum((O - s.Y) ** 2)

    def grad(p, bug=None):
        s = D(p)
        A1, A2, O = fwd(p, s)
        dO = (O - s.Y) / m
        dW3 = A2.T @ dO
        if bug == "sign":  # residual written as Y - O here
            dW3 = A2.T @ ((s.Y - O) / m)
        db3 = dO.sum(axis=0)
        dZ2 = (dO @ p["W3"].T) * (1 - A2 * A2)
        dW2 = A1.T @ dZ2
        if bug == "transpose":
            dW2 = dZ2.T @ A1
        db2 = dZ2.sum(axis=0)
        dZ1 = (dZ2 @ p["W2"].T) * (1 - A1 * A1)
        dW1 = s.X.T @ dZ1
        db1 = dZ1.sum(axis=0)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("transpose", "W2", _with_bug(grad, "transpose")),
        _Spec("sign", "W3", _with_bug(grad, "sign")),
        _Spec("relative", "b2", _scaled(g0, "b2", 1 + 1e-3)),
        _Spec("one_element", "W2", _one_element(g0, "W2", (4, 7))),
    ]
    return Case("mlp_tanh", loss, g0, _cast(P, dtype)), specs


def _mlp_sigmoid_bce(dtype):
    """deeplearning.ai 'planar data' net: column layout, tanh hidden, sigmoid out, BCE."""
    rng = np.random.default_rng(1006)
    n_x, n_h, m = 4, 4, 50
    X = rng.standard_normal((n_x, m))
    Y = ((X[0] * X[1] + 0.5 * X[2] - 0.3 * X[3] ** 2) > 0).astype(np.float64).reshape(1, m)
    P = {"W1": 0.8 * rng.standard_normal((n_h, n_x)),
         "b1": 0.1 * rng.standard_normal((n_h, 1)),
         "W2": 0.8 * rng.standard_normal((1, n_h)),
         "b2": 0.1 * rng.standard_normal((1, 1))}
    D = _Data(X=X, Y=Y)

    def fwd(p, s):
        Z1 = p["W1"] @ s.X + p["b1"]
        A1 = np.tanh(Z1)
        Z2 = p["W2"] @ A1 + p["b2"]
        A2 = _sigmoid(Z2)
        return A1, A2

    def loss(p):
        s = D(p)
        _, A2 = fwd(p, s)
        logprobs = s.Y * np.log(A2) + (1 - s.Y) * np.log(1 - A2)
        return -1.0 / m * np.sum(logprobs)

    def grad(p, bug=None):
        s = D(p)
        A1, A2 = fwd(p, s)
        dZ2 = A2 - s.Y
        dW2 = 1.0 / m * (dZ2 @ A1.T)
        if bug == "sign":
            dW2 = 1.0 / m * ((s.Y - A2) @ A1.T)
        db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
        if bug == "no_m_b2":
            db2 = np.sum(dZ2, axis=1, keepdims=True)
        dZ1 = (p["W2"].T @ dZ2) * (1 - A1 ** 2)
        dW1 = 1.0 / m * (dZ1 @ s.X.T)
        if bug == "transpose":
            dW1 = 1.0 / m * (s.X @ dZ1.T)
        db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
        if bug == "no_m_b1":
            db1 = np.sum(dZ1, axis=1, keepdims=True)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("missing_1/m", "b2", _with_bug(grad, "no_m_b2")),
        _Spec("missing_1/m", "b1", _with_bug(grad, "no_m_b1")),
        _Spec("transpose", "W1", _with_bug(grad, "transpose")),
        _Spec("sign", "W2", _with_bug(grad, "sign")),
        _Spec("relative", "W1", _scaled(g0, "W1", 1 - 1e-3)),
    ]
    return Case("mlp_sigmoid_bce", loss, g0, _cast(P, dtype)), specs


def _softmax_ce(dtype):
    """Multinomial logistic regression, mean softmax cross-entropy."""
    rng = np.random.default_rng(1007)
    m, d, k = 32, 10, 5
    X = rng.standard_normal((m, d))
    labels = np.argmax(X @ rng.standard_normal((d, k)) + rng.gumbel(size=(m, k)), axis=1)
    Yoh = np.eye(k)[labels]
    P = {"W": 0.1 * rng.standard_normal((d, k)), "b": 0.1 * rng.standard_normal(k)}
    D = _Data(X=X, Y=Yoh)

    def loss(p):
        s = D(p)
        Z = s.X @ p["W"] + p["b"]
        logp = Z - _logsumexp(Z, axis=1)[:, None]
        return -np.sum(s.Y * logp) / m

    def grad(p, bug=None):
        s = D(p)
        Z = s.X @ p["W"] + p["b"]
        G = _softmax(Z, axis=1) - s.Y
        dW = s.X.T @ G / m
        if bug == "factor":     # 1/(2m) copied over from an MSE loss
            dW = s.X.T @ G / (2 * m)
        db = G.sum(axis=0) / m
        if bug == "no_m":
            db = G.sum(axis=0)
        return {"W": dW, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("factor", "W", _with_bug(grad, "factor")),
        _Spec("missing_1/m", "b", _with_bug(grad, "no_m")),
        _Spec("one_element", "W", _one_element(g0, "W", (3, 1))),
        _Spec("relative", "W", _noisy(g0, "W", 1e-6, 71)),
    ]
    return Case("softmax_ce", loss, g0, _cast(P, dtype)), specs


def _layernorm(dtype):
    """h = X W (10x10); layer norm over features with gain g and bias b; MSE."""
    rng = np.random.default_rng(1008)
    m, n = 16, 10
    eps = 1e-5
    X = rng.standard_normal((m, n))
    T = rng.standard_normal((m, n))
    P = {"W": 2 * rng.standard_normal((n, n)) / math.sqrt(n),
         "g": 1 + 0.2 * rng.standard_normal(n),
         "b": 0.2 * rng.standard_normal(n)}
    D = _Data(X=X, T=T)

    def fwd(p, s, eps_=eps):
        h = s.X @ p["W"]
        xc = h - h.mean(axis=1, keepdims=True)
        var = np.mean(xc * xc, axis=1, keepdims=True)
        rstd = 1.0 / np.sqrt(var + eps_)
        xhat = xc * rstd
        y = p["g"] * xhat + p["b"]
        return xc, var, rstd, xhat, y

    def loss(p):
        s = D(p)
        y = fwd(p, s)[-1]
        return 0.5 / m * np.sum((y - s.T) ** 2)

    def grad(p, bug=None):
        s = D(p)
        xc, var, rstd, xhat, y = fwd(p, s)
        dy = (y - s.T) / m
        dg = np.sum(dy * xhat, axis=0)
        if bug == "factor":
            dg = 2 * np.sum(dy * xhat, axis=0)
        db = dy.sum(axis=0)
        if bug == "eps":     # backward recomputes the statistics with another eps
            rstd = 1.0 / np.sqrt(var + 1e-3)
            xhat = xc * rstd
        dxhat = dy * p["g"]
        dh = rstd * (dxhat - dxhat.mean(axis=1, keepdims=True)
                     - xhat * np.mean(dxhat * xhat, axis=1, keepdims=True))
        dW = s.X.T @ dh
        if bug == "transpose":
            dW = dh.T @ s.X
        return {"W": dW, "g": dg, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("relative", "W", _with_bug(grad, "eps")),
        _Spec("transpose", "W", _with_bug(grad, "transpose")),
        _Spec("factor", "g", _with_bug(grad, "factor")),
        _Spec("one_element", "b", _zero_last(g0, "b")),
    ]
    return Case("layernorm", loss, g0, _cast(P, dtype)), specs


def _batchnorm(dtype):
    """h = X W; training-mode batch norm (gamma, beta); tanh; linear V; MSE."""
    rng = np.random.default_rng(1009)
    m, n0, n1, n2 = 16, 6, 8, 2
    eps = 1e-5
    X = rng.standard_normal((m, n0))
    T = rng.standard_normal((m, n2))
    P = {"W": 2.5 * rng.standard_normal((n0, n1)),
         "gamma": 1 + 0.2 * rng.standard_normal(n1),
         "beta": 0.2 * rng.standard_normal(n1),
         "V": rng.standard_normal((n1, n2)) / math.sqrt(n1)}
    D = _Data(X=X, T=T)

    def fwd(p, s):
        h = s.X @ p["W"]
        xc = h - h.mean(axis=0)
        var = np.mean(xc * xc, axis=0)
        rstd = 1.0 / np.sqrt(var + eps)
        xhat = xc * rstd
        a = np.tanh(p["gamma"] * xhat + p["beta"])
        out = a @ p["V"]
        return xc, var, rstd, xhat, a, out

    def loss(p):
        s = D(p)
        out = fwd(p, s)[-1]
        return 0.5 / m * np.sum((out - s.T) ** 2)

    def grad(p, bug=None):
        s = D(p)
        xc, var, rstd, xhat, a, out = fwd(p, s)
        dout = (out - s.T) / m
        dV = a.T @ dout
        dy = (dout @ p["V"].T) * (1 - a * a)
        dgamma = np.sum(dy * xhat, axis=0)
        dbeta = dy.sum(axis=0)
        if bug == "sign":
            dbeta = -dy.sum(axis=0)
        dxhat = dy * p["gamma"]
        if bug == "no_eps":  # backward forgot eps in the std
            rstd = 1.0 / np.sqrt(var)
        dh = 1.0 / m * rstd * (m * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
        if bug == "no_m":
            dh = rstd * (m * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
        dW = s.X.T @ dh
        return {"W": dW, "gamma": dgamma, "beta": dbeta, "V": dV}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("missing_1/m", "W", _with_bug(grad, "no_m")),
        _Spec("relative", "W", _with_bug(grad, "no_eps")),
        _Spec("sign", "beta", _with_bug(grad, "sign")),
        _Spec("one_element", "gamma", _one_element(g0, "gamma", 3)),
    ]
    return Case("batchnorm", loss, g0, _cast(P, dtype)), specs


def _conv1d(dtype):
    """Valid 1-D convolution (cross-correlation), 3 -> 4 channels, width 5; tanh; MSE."""
    rng = np.random.default_rng(1010)
    B, C, L, O, K = 6, 3, 20, 4, 5
    Lo = L - K + 1
    X = rng.standard_normal((B, C, L))
    T = rng.standard_normal((B, O, Lo))
    P = {"K": rng.standard_normal((O, C, K)) / math.sqrt(C * K),
         "b": 0.1 * rng.standard_normal(O)}
    D = _Data(Xw=np.lib.stride_tricks.sliding_window_view(X, K, axis=2), T=T)  # (B,C,Lo,K)

    def fwd(p, s):
        Z = np.einsum("bclk,ock->bol", s.Xw, p["K"]) + p["b"][None, :, None]
        return np.tanh(Z)

    def loss(p):
        s = D(p)
        A = fwd(p, s)
        return 0.5 / B * np.sum((A - s.T) ** 2)

    def grad(p, bug=None):
        s = D(p)
        A = fwd(p, s)
        dZ = (A - s.T) / B * (1 - A * A)
        dK = np.einsum("bol,bclk->ock", dZ, s.Xw)
        db = dZ.sum(axis=(0, 2))
        if bug == "factor":
            db = 0.5 * dZ.sum(axis=(0, 2))
        return {"K": dK, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("factor", "b", _with_bug(grad, "factor")),
        _Spec("one_element", "K", _one_element(g0, "K", (1, 2, 4))),
        _Spec("relative", "K", _noisy(g0, "K", 1e-3, 101)),
        _Spec("relative", "K", _scaled(g0, "K", 1 + 1e-6)),
    ]
    return Case("conv1d", loss, g0, _cast(P, dtype)), specs


def _conv2d(dtype):
    """Valid 2-D convolution, 2 -> 3 channels, 3x3 kernel on 7x7 images; tanh; MSE."""
    rng = np.random.default_rng(1011)
    B, C, H, O, K = 5, 2, 7, 3, 3
    Ho = H - K + 1
    X = rng.standard_normal((B, C, H, H))
    T = rng.standard_normal((B, O, Ho, Ho))
    P = {"K": rng.standard_normal((O, C, K, K)) / math.sqrt(C * K * K),
         "b": 0.1 * rng.standard_normal(O)}
    Xw = np.lib.stride_tricks.sliding_window_view(X, (K, K), axis=(2, 3))  # (B,C,Ho,Ho,K,K)
    D = _Data(Xw=Xw, T=T)

    def fwd(p, s):
        Z = np.einsum("bcijkl,ockl->boij", s.Xw, p["K"]) + p["b"][None, :, None, None]
        return np.tanh(Z)

    def loss(p):
        s = D(p)
        A = fwd(p, s)
        return 0.5 / B * np.sum((A - s.T) ** 2)

    def grad(p, bug=None):
        s = D(p)
        A = fwd(p, s)
        dZ = (A - s.T) * (1 - A * A)
        dK = np.einsum("boij,bcijkl->ockl", dZ, s.Xw) / B
        if bug == "sign":
            dK = -np.einsum("boij,bcijkl->ockl", dZ, s.Xw) / B
        db = dZ.sum(axis=(0, 2, 3)) / B
        if bug == "no_m":
            db = dZ.sum(axis=(0, 2, 3))
        return {"K": dK, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("missing_1/m", "b", _with_bug(grad, "no_m")),
        _Spec("sign", "K", _with_bug(grad, "sign")),
        _Spec("relative", "K", _noisy(g0, "K", 1e-6, 111)),
        _Spec("one_element", "K", _zero_last(g0, "K")),
    ]
    return Case("conv2d", loss, g0, _cast(P, dtype)), specs


def _attention(dtype):
    """Single-head self-attention, Q/K/V/O projections 8x8, softmax(QK^T/sqrt(d)); MSE."""
    rng = np.random.default_rng(1012)
    B, T, d = 2, 6, 8
    scale = 1.0 / math.sqrt(d)
    X = rng.standard_normal((B, T, d))
    Tg = rng.standard_normal((B, T, d))
    P = {k: rng.standard_normal((d, d)) / math.sqrt(d) * (1.5 if k in ("Wq", "Wk") else 1.0)
         for k in ("Wq", "Wk", "Wv", "Wo")}
    D = _Data(X=X, Xf=X.reshape(B * T, d), Tg=Tg)

    def fwd(p, s):
        Q = s.X @ p["Wq"]
        Kk = s.X @ p["Wk"]
        V = s.X @ p["Wv"]
        S = (Q @ Kk.transpose(0, 2, 1)) * scale
        A = _softmax(S, axis=-1)
        O = A @ V
        Y = O @ p["Wo"]
        return Q, Kk, V, A, O, Y

    def loss(p):
        s = D(p)
        Y = fwd(p, s)[-1]
        return 0.5 / B * np.sum((Y - s.Tg) ** 2)

    def grad(p, bug=None):
        s = D(p)
        Q, Kk, V, A, O, Y = fwd(p, s)
        dY = (Y - s.Tg) / B
        dWo = O.reshape(-1, d).T @ dY.reshape(-1, d)
        dO = dY @ p["Wo"].T
        dV = A.transpose(0, 2, 1) @ dO
        dA = dO @ V.transpose(0, 2, 1)
        dS = A * (dA - np.sum(dA * A, axis=-1, keepdims=True))   # unscaled
        sq = 1.0 if bug == "factor" else scale                   # forgot the 1/sqrt(d)
        sk = {"rel3": 0.354, "rel6": 0.353553}.get(bug, scale)   # hand-typed 1/sqrt(8)
        dQ = sq * (dS @ Kk)
        dK = sk * (dS.transpose(0, 2, 1) @ Q)
        Xf = s.Xf
        dWq = Xf.T @ dQ.reshape(-1, d)
        dWk = Xf.T @ dK.reshape(-1, d)
        dWv = Xf.T @ dV.reshape(-1, d)
        if bug == "T_q":
            dWq = dQ.reshape(-1, d).T @ Xf
        if bug == "T_k":
            dWk = dK.reshape(-1, d).T @ Xf
        if bug == "T_v":
            dWv = dV.reshape(-1, d).T @ Xf
        return {"Wq": dWq, "Wk": dWk, "Wv": dWv, "Wo": dWo}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("transpose", "Wq", _with_bug(grad, "T_q")),
        _Spec("transpose", "Wk", _with_bug(grad, "T_k")),
        _Spec("transpose", "Wv", _with_bug(grad, "T_v")),
        _Spec("factor", "Wq", _with_bug(grad, "factor")),
        _Spec("relative", "Wk", _with_bug(grad, "rel3")),
        _Spec("relative", "Wk", _with_bug(grad, "rel6")),
        _Spec("one_element", "Wo", _one_element(g0, "Wo", (0, 5))),
    ]
    return Case("attention", loss, g0, _cast(P, dtype)), specs


def _rnn_step(dtype):
    """One RNN step h = tanh(x W^T + h0 U^T + b), output h V + c, MSE."""
    rng = np.random.default_rng(1013)
    m, dx, dh, dy = 8, 5, 6, 3
    x = rng.standard_normal((m, dx))
    h0 = np.tanh(rng.standard_normal((m, dh)))
    y = rng.standard_normal((m, dy))
    P = {"W": rng.standard_normal((dh, dx)) / math.sqrt(dx),
         "U": rng.standard_normal((dh, dh)) / math.sqrt(dh),
         "b": 0.1 * rng.standard_normal(dh),
         "V": rng.standard_normal((dh, dy)) / math.sqrt(dh),
         "c": 0.1 * rng.standard_normal(dy)}
    D = _Data(x=x, h0=h0, y=y)

    def fwd(p, s):
        h = np.tanh(s.x @ p["W"].T + s.h0 @ p["U"].T + p["b"])
        return h, h @ p["V"] + p["c"]

    def loss(p):
        s = D(p)
        out = fwd(p, s)[1]
        return 0.5 / m * np.sum((out - s.y) ** 2)

    def grad(p, bug=None):
        s = D(p)
        h, out = fwd(p, s)
        dout = (out - s.y) / m
        dV = h.T @ dout
        dc = dout.sum(axis=0)
        dz = (dout @ p["V"].T) * (1 - h * h)
        dW = dz.T @ s.x
        dU = dz.T @ s.h0
        if bug == "transpose":
            dU = s.h0.T @ dz
        db = dz.sum(axis=0)
        if bug == "sign":
            db = -dz.sum(axis=0)
        return {"W": dW, "U": dU, "b": db, "V": dV, "c": dc}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("transpose", "U", _with_bug(grad, "transpose")),
        _Spec("sign", "b", _with_bug(grad, "sign")),
        _Spec("relative", "U", _noisy(g0, "U", 1e-6, 131)),
        _Spec("one_element", "W", _one_element(g0, "W", (2, 4))),
    ]
    return Case("rnn_step", loss, g0, _cast(P, dtype)), specs


def _rnn_bptt(dtype):
    """Elman RNN unrolled 4 steps, per-step linear readout, MSE; backprop through time."""
    rng = np.random.default_rng(1014)
    Tn, m, dx, dh, dy = 4, 8, 4, 6, 2
    xs = rng.standard_normal((Tn, m, dx))
    h0 = np.tanh(rng.standard_normal((m, dh)))
    ys = rng.standard_normal((Tn, m, dy))
    P = {"W": rng.standard_normal((dh, dx)) / math.sqrt(dx),
         "U": rng.standard_normal((dh, dh)) / math.sqrt(dh),
         "b": 0.1 * rng.standard_normal(dh),
         "V": rng.standard_normal((dh, dy)) / math.sqrt(dh)}
    D = _Data(xs=xs, h0=h0, ys=ys)

    def fwd(p, s):
        hs = [s.h0]
        for t in range(Tn):
            hs.append(np.tanh(s.xs[t] @ p["W"].T + hs[-1] @ p["U"].T + p["b"]))
        outs = [h @ p["V"] for h in hs[1:]]
        return hs, outs

    def loss(p):
        s = D(p)
        _, outs = fwd(p, s)
        tot = 0.0
        for t in range(Tn):
            tot = tot + np.sum((outs[t] - s.ys[t]) ** 2)
        return 0.5 / m * tot

    def grad(p, bug=None):
        s = D(p)
        hs, outs = fwd(p, s)
        dW = np.zeros_like(p["W"])
        dU = np.zeros_like(p["U"])
        db = np.zeros_like(p["b"])
        dV = np.zeros_like(p["V"])
        dnext = np.zeros_like(s.h0)
        for t in reversed(range(Tn)):
            dout = (outs[t] - s.ys[t]) / m
            dV += hs[t + 1].T @ dout
            dz = (dout @ p["V"].T + dnext) * (1 - hs[t + 1] ** 2)
            dW += dz.T @ s.xs[t]
            if bug == "transpose":
                dU += hs[t].T @ dz
            else:
                dU += dz.T @ hs[t]
            db += dz.sum(axis=0)
            dnext = dz @ p["U"]
        if bug == "factor":
            dV = dV * 2
        return {"W": dW, "U": dU, "b": db, "V": dV}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("transpose", "U", _with_bug(grad, "transpose")),
        _Spec("factor", "V", _with_bug(grad, "factor")),
        _Spec("relative", "U", _noisy(g0, "U", 1e-3, 141)),
        _Spec("relative", "W", _scaled(g0, "W", 1 + 1e-6)),
    ]
    return Case("rnn_bptt", loss, g0, _cast(P, dtype)), specs


def _huber(dtype):
    """Linear regression with the Huber loss (delta = 1) and outliers."""
    rng = np.random.default_rng(1015)
    m, d = 40, 6
    delta = 1.0
    X = rng.standard_normal((m, d))
    wt = rng.standard_normal(d)
    y = X @ wt + 0.3 * rng.standard_normal(m)
    y[::7] += 6 * rng.standard_normal(len(y[::7]))

    def draw():
        return {"w": wt + 0.5 * rng.standard_normal(d), "b": 0.2 * rng.standard_normal(1)}

    def ok(q):
        r = np.abs(X @ q["w"] + q["b"] - y)
        return np.abs(r - delta).min() > _MARGIN and (r < delta).sum() > 5 and (r > delta).sum() > 5

    P = _draw_until(draw, ok)
    D = _Data(X=X, y=y)

    def loss(p):
        s = D(p)
        r = s.X @ p["w"] + p["b"] - s.y
        a = np.abs(r)
        return np.mean(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)))

    def grad(p, bug=None):
        s = D(p)
        r = s.X @ p["w"] + p["b"] - s.y
        dr = np.clip(r, -delta, delta) / m
        dw = s.X.T @ dr
        if bug == "factor":   # quadratic branch differentiated as r^2 -> 2r
            dw = s.X.T @ (np.where(np.abs(r) <= delta, 2 * r, delta * np.sign(r)) / m)
        db = dr.sum(keepdims=True)
        if bug == "sign":
            db = -dr.sum(keepdims=True)
        return {"w": dw, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("factor", "w", _with_bug(grad, "factor")),
        _Spec("sign", "b", _with_bug(grad, "sign")),
        _Spec("relative", "w", _noisy(g0, "w", 1e-6, 151)),
    ]
    return Case("huber", loss, g0, _cast(P, dtype)), specs


def _logsumexp_case(dtype):
    """Mean over a batch of logsumexp(x W + b) minus a linear term (log-partition)."""
    rng = np.random.default_rng(1016)
    m, d, k = 24, 7, 10
    X = rng.standard_normal((m, d))
    Cc = rng.standard_normal((m, k)) * 0.3
    P = {"W": 0.5 * rng.standard_normal((d, k)), "b": 0.5 * rng.standard_normal(k)}
    D = _Data(X=X, C=Cc)

    def loss(p):
        s = D(p)
        Z = s.X @ p["W"] + p["b"]
        return np.mean(_logsumexp(Z, axis=1)) - np.sum(s.C * Z) / m

    def grad(p, bug=None):
        s = D(p)
        Z = s.X @ p["W"] + p["b"]
        G = (_softmax(Z, axis=1) - s.C) / m
        dW = s.X.T @ G
        if bug == "sign":
            dW = s.X.T @ ((s.C - _softmax(Z, axis=1)) / m)
        db = G.sum(axis=0)
        return {"W": dW, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("sign", "W", _with_bug(grad, "sign")),
        _Spec("one_element", "b", _zero_last(g0, "b")),
        _Spec("relative", "b", _noisy(g0, "b", 1e-3, 161)),
        _Spec("relative", "W", _scaled(g0, "W", 1 - 1e-6)),
    ]
    return Case("logsumexp", loss, g0, _cast(P, dtype)), specs


def _poisson(dtype):
    """Poisson regression: mean(exp(z) - y z + log y!), z = X w + b."""
    rng = np.random.default_rng(1017)
    m, d = 50, 5
    X = 0.4 * rng.standard_normal((m, d))
    wt = rng.standard_normal(d)
    y = rng.poisson(np.exp(X @ wt + 1.0)).astype(np.float64)
    lgy = np.array([math.lgamma(v + 1) for v in y])
    P = {"w": wt + 0.3 * rng.standard_normal(d), "b": np.array([0.7])}
    D = _Data(X=X, y=y, lgy=lgy)

    def loss(p):
        s = D(p)
        z = s.X @ p["w"] + p["b"]
        return np.mean(np.exp(z) - s.y * z + s.lgy)

    def grad(p, bug=None):
        s = D(p)
        z = s.X @ p["w"] + p["b"]
        mu = np.exp(z)
        dw = s.X.T @ (mu - s.y) / m
        if bug == "no_m":
            dw = s.X.T @ (mu - s.y)
        db = np.sum(mu - s.y, keepdims=True) / m
        if bug == "sign":
            db = np.sum(s.y - mu, keepdims=True) / m
        return {"w": dw, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("missing_1/m", "w", _with_bug(grad, "no_m")),
        _Spec("sign", "b", _with_bug(grad, "sign")),
        _Spec("relative", "w", _scaled(g0, "w", 1 + 1e-3)),
    ]
    return Case("poisson", loss, g0, _cast(P, dtype)), specs


def _gaussian_nll(dtype):
    """Gaussian NLL with linear mean and a per-output log-sigma parameter."""
    rng = np.random.default_rng(1018)
    m, d, k = 40, 4, 2
    X = rng.standard_normal((m, d))
    Y = X @ rng.standard_normal((d, k)) + np.array([0.5, 2.0]) * rng.standard_normal((m, k))
    P = {"W": rng.standard_normal((d, k)), "b": 0.1 * rng.standard_normal(k),
         "log_sigma": np.array([0.2, 0.4])}
    D = _Data(X=X, Y=Y)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def loss(p):
        s = D(p)
        mu = s.X @ p["W"] + p["b"]
        z = (s.Y - mu) * np.exp(-p["log_sigma"])
        return np.sum(0.5 * z * z + p["log_sigma"] + half_log_2pi) / m

    def grad(p, bug=None):
        s = D(p)
        mu = s.X @ p["W"] + p["b"]
        inv_var = np.exp(-2 * p["log_sigma"])
        z2 = (s.Y - mu) ** 2 * inv_var
        dmu = (mu - s.Y) * inv_var / m
        dW = s.X.T @ dmu
        if bug == "sign":
            dW = s.X.T @ ((s.Y - mu) * inv_var / m)
        if bug == "factor":  # d/dmu of 0.5 z^2 taken as 2 z dz
            dW = s.X.T @ (2 * dmu)
        db = dmu.sum(axis=0)
        dls = np.sum(1 - z2, axis=0) / m
        return {"W": dW, "b": db, "log_sigma": dls}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("sign", "W", _with_bug(grad, "sign")),
        _Spec("factor", "W", _with_bug(grad, "factor")),
        _Spec("one_element", "W", _one_element(g0, "W", (1, 0))),
        _Spec("relative", "log_sigma", _scaled(g0, "log_sigma", 1 + 1e-6)),
    ]
    return Case("gaussian_nll", loss, g0, _cast(P, dtype)), specs


def _matfact(dtype):
    """Masked matrix factorisation 0.5 * ||M o (U V^T - R)||^2 + lam/2 (||U||^2 + ||V||^2)."""
    rng = np.random.default_rng(1019)
    n, p_, r = 12, 10, 3
    lam = 0.1
    R = rng.standard_normal((n, r)) @ rng.standard_normal((r, p_)) + 0.1 * rng.standard_normal((n, p_))
    M = (rng.random((n, p_)) < 0.6).astype(np.float64)
    P = {"U": 0.7 * rng.standard_normal((n, r)), "V": 0.7 * rng.standard_normal((p_, r))}
    D = _Data(R=R, M=M)

    def loss(p):
        s = D(p)
        E = s.M * (p["U"] @ p["V"].T - s.R)
        return 0.5 * np.sum(E * E) + 0.5 * lam * (np.sum(p["U"] ** 2) + np.sum(p["V"] ** 2))

    def grad(p, bug=None):
        s = D(p)
        E = s.M * (p["U"] @ p["V"].T - s.R)
        dU = E @ p["V"] + lam * p["U"]
        if bug == "sign":
            dU = -(E @ p["V"]) + lam * p["U"]
        dV = E.T @ p["U"] + lam * p["V"]
        if bug == "factor":   # 0.5 of the squared error forgotten
            dV = 2 * (E.T @ p["U"]) + lam * p["V"]
        return {"U": dU, "V": dV}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("sign", "U", _with_bug(grad, "sign")),
        _Spec("factor", "V", _with_bug(grad, "factor")),
        _Spec("one_element", "V", _one_element(g0, "V", (7, 2))),
        _Spec("relative", "U", _noisy(g0, "U", 1e-3, 191)),
    ]
    return Case("matfact", loss, g0, _cast(P, dtype)), specs


def _badly_scaled(dtype):
    """Logistic regression on unstandardised features: scale 1e4 and 1e-4.

    w_small (~1e-4) multiplies features of size ~1e4, w_big (~1e4) multiplies
    features of size ~1e-4, so the two gradients differ by ~8 orders of magnitude.
    """
    rng = np.random.default_rng(1020)
    m = 40
    Xb = 1e4 * (1 + rng.random((m, 3)))        # e.g. incomes
    Xs = 1e-4 * rng.standard_normal((m, 3))    # e.g. tiny ratios
    ws_t = 1e-4 * rng.standard_normal(3)
    wb_t = 1e4 * rng.standard_normal(3)
    z_t = Xb @ ws_t + Xs @ wb_t
    y = (rng.random(m) < _sigmoid(z_t - z_t.mean())).astype(np.float64)
    P = {"w_small": ws_t * (1 + 0.3 * rng.standard_normal(3)),
         "w_big": wb_t * (1 + 0.3 * rng.standard_normal(3)),
         "b": np.array([-float(z_t.mean())])}
    D = _Data(Xb=Xb, Xs=Xs, y=y)

    def loss(p):
        s = D(p)
        z = s.Xb @ p["w_small"] + s.Xs @ p["w_big"] + p["b"]
        return np.mean(np.logaddexp(0.0, z) - s.y * z)

    def grad(p, bug=None):
        s = D(p)
        z = s.Xb @ p["w_small"] + s.Xs @ p["w_big"] + p["b"]
        dz = (_sigmoid(z) - s.y) / m
        dws = s.Xb.T @ dz
        dwb = s.Xs.T @ dz
        if bug == "sign":
            dwb = -(s.Xs.T @ dz)
        if bug == "factor":
            dws = 0.5 * (s.Xb.T @ dz)
        return {"w_small": dws, "w_big": dwb, "b": dz.sum(keepdims=True)}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("sign", "w_big", _with_bug(grad, "sign")),
        _Spec("factor", "w_small", _with_bug(grad, "factor")),
        _Spec("relative", "w_big", _noisy(g0, "w_big", 1e-3, 201)),
        _Spec("relative", "w_small", _noisy(g0, "w_small", 1e-6, 202)),
        _Spec("one_element", "w_big", _one_element(g0, "w_big", 1, frac=0.1)),
    ]
    return Case("badly_scaled", loss, g0, _cast(P, dtype)), specs


def _large_loss(dtype):
    """Sum of squared errors on unnormalised targets (~1e4) through a tanh layer: loss ~1e8."""
    rng = np.random.default_rng(1021)
    m, d, h = 30, 4, 8
    X = rng.standard_normal((m, d))
    y = 2e4 + 1e3 * np.tanh(X @ rng.standard_normal(d)) + 1e3 * rng.standard_normal(m)
    P = {"W1": rng.standard_normal((d, h)) / math.sqrt(d),
         "b1": 0.1 * rng.standard_normal(h),
         "w2": 5e2 * rng.standard_normal((h, 1)),
         "b2": np.array([2e4])}
    D = _Data(X=X, y=y.reshape(m, 1))

    def fwd(p, s):
        A = np.tanh(s.X @ p["W1"] + p["b1"])
        return A, A @ p["w2"] + p["b2"]

    def loss(p):
        s = D(p)
        _, out = fwd(p, s)
        return np.sum((out - s.y) ** 2)

    def grad(p, bug=None):
        s = D(p)
        A, out = fwd(p, s)
        dout = 2 * (out - s.y)
        dw2 = A.T @ dout
        db2 = dout.sum(axis=0)
        if bug == "factor":  # derivative of r^2 taken as r
            db2 = 0.5 * dout.sum(axis=0)
        dZ = (dout @ p["w2"].T) * (1 - A * A)
        dW1 = s.X.T @ dZ
        db1 = dZ.sum(axis=0)
        return {"W1": dW1, "b1": db1, "w2": dw2, "b2": db2}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("factor", "b2", _with_bug(grad, "factor")),
        _Spec("relative", "W1", _noisy(g0, "W1", 1e-3, 211)),
        _Spec("relative", "w2", _noisy(g0, "w2", 1e-6, 212)),
        _Spec("one_element", "W1", _one_element(g0, "W1", (3, 6))),
    ]
    return Case("large_loss", loss, g0, _cast(P, dtype)), specs


def _maxpool(dtype):
    """Linear layer, max-pool over feature pairs, linear readout, MSE."""
    rng = np.random.default_rng(1022)
    m, d, h, k = 10, 8, 12, 2
    X = rng.standard_normal((m, d))
    T = rng.standard_normal((m, k))

    def draw():
        return {"W": rng.standard_normal((d, h)) / math.sqrt(d),
                "b": 0.1 * rng.standard_normal(h),
                "V": rng.standard_normal((h // 2, k)) / math.sqrt(h // 2)}

    def ok(q):
        Hh = (X @ q["W"] + q["b"]).reshape(m, h // 2, 2)
        return np.abs(Hh[..., 0] - Hh[..., 1]).min() > _MARGIN

    P = _draw_until(draw, ok)
    D = _Data(X=X, T=T)

    def fwd(p, s):
        Hh = (s.X @ p["W"] + p["b"]).reshape(m, h // 2, 2)
        A = Hh.max(axis=2)
        return Hh, A, A @ p["V"]

    def loss(p):
        s = D(p)
        out = fwd(p, s)[-1]
        return 0.5 / m * np.sum((out - s.T) ** 2)

    def grad(p, bug=None):
        s = D(p)
        Hh, A, out = fwd(p, s)
        dout = (out - s.T) / m
        dV = A.T @ dout
        if bug == "sign":
            dV = A.T @ ((s.T - out) / m)
        dA = dout @ p["V"].T
        first = Hh[..., 0] >= Hh[..., 1]
        dH = np.stack([dA * first, dA * ~first], axis=2).reshape(m, h)
        dW = s.X.T @ dH
        db = dH.sum(axis=0)
        return {"W": dW, "b": db, "V": dV}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("sign", "V", _with_bug(grad, "sign")),
        _Spec("one_element", "W", _one_element(g0, "W", (5, 9))),
        _Spec("relative", "b", _scaled(g0, "b", 1 + 1e-3)),
    ]
    return Case("maxpool", loss, g0, _cast(P, dtype)), specs


def _l1_abs(dtype):
    """Least absolute deviations + L1 penalty: mean|Xw + b - y| + lam * ||w||_1."""
    rng = np.random.default_rng(1023)
    m, d = 30, 5
    lam = 0.05
    X = rng.standard_normal((m, d))
    y = X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(m)

    def draw():
        return {"w": rng.standard_normal(d), "b": 0.3 * rng.standard_normal(1)}

    def ok(q):
        return (np.abs(X @ q["w"] + q["b"] - y).min() > _MARGIN and np.abs(q["w"]).min() > _MARGIN)

    P = _draw_until(draw, ok)
    D = _Data(X=X, y=y)

    def loss(p):
        s = D(p)
        r = s.X @ p["w"] + p["b"] - s.y
        return np.mean(np.abs(r)) + lam * np.sum(np.abs(p["w"]))

    def grad(p, bug=None):
        s = D(p)
        sr = np.sign(s.X @ p["w"] + p["b"] - s.y)
        dw = s.X.T @ sr / m + lam * np.sign(p["w"])
        db = sr.sum(keepdims=True) / m
        if bug == "no_m":
            db = sr.sum(keepdims=True)
        if bug == "sign":
            dw = -(s.X.T @ sr / m + lam * np.sign(p["w"]))
        return {"w": dw, "b": db}

    g0 = _with_bug(grad, None)
    specs = [
        _Spec("missing_1/m", "b", _with_bug(grad, "no_m")),
        _Spec("sign", "w", _with_bug(grad, "sign")),
        _Spec("relative", "w", _noisy(g0, "w", 1e-6, 231)),
    ]
    return Case("l1_abs", loss, g0, _cast(P, dtype)), specs


_BUILDERS = (
    _linreg_mse,
    _logreg,
    _l2_mlp,
    _mlp_relu,
    _mlp_tanh,
    _mlp_sigmoid_bce,
    _softmax_ce,
    _layernorm,
    _batchnorm,
    _conv1d,
    _conv2d,
    _attention,
    _rnn_step,
    _rnn_bptt,
    _huber,
    _logsumexp_case,
    _poisson,
    _gaussian_nll,
    _matfact,
    _badly_scaled,
    _large_loss,
    _maxpool,
    _l1_abs,
)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------

def _check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


def cases(dtype=np.float64) -> list[Case]:
    """All cases, parameters cast to ``dtype`` (float64 or float32)."""
    dt = _check_dtype(dtype)
    return [b(dt)[0] for b in _BUILDERS]


def case_names() -> list[str]:
    return [c.name for c in cases()]


def _bug_size(case: Case, spec: _Spec) -> float:
    g = case.grad(case.params)[spec.tensor]
    gb = spec.grad(case.params)[spec.tensor]
    return float(np.linalg.norm(gb - g) / np.linalg.norm(g))


def bugs(dtype=np.float64) -> list[Bug]:
    """All planted bugs; ``Bug.grad`` works on params of ``dtype``.

    ``Bug.size`` is always measured on the float64 parameters.
    """
    dt = _check_dtype(dtype)
    out = []
    for b in _BUILDERS:
        c64, s64 = b(np.dtype(np.float64))
        if dt == np.float64:
            specs = s64
        else:
            _, specs = b(dt)
        for sp64, sp in zip(s64, specs):
            out.append(Bug(case=c64.name, kind=sp.kind, tensor=sp.tensor,
                           size=_bug_size(c64, sp64), grad=sp.grad))
    return out
