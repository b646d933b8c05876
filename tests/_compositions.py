"""Random differentiable programs with exact gradients, for property-based tests.

A `Program` is a random composition of differentiable primitives — affine maps, tanh, sigmoid,
exp and log (as log1p(h**2)) on safe domains, elementwise products, softmax — ending in a reduction (sum, mean,
a weighted sum, log-sum-exp). Its gradient is exact: reverse mode through the same composition,
in float64, at the point the loss really sees (the parameters rounded to their dtype).

The hypothesis strategies here are shared by tests/test_properties.py (which asserts) and
benchmarks/properties.py (which counts false alarms and misses over many more examples);
`seeded_programs` draws the same kind of programs from a seed alone, for counting a share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

UNARY = ("tanh", "sigmoid", "exp", "log", "square")
# Above this bound on |h|, a tanh goes in first: exp stays below e^3, squares and logs stay tame,
# so float32 never overflows and every value stays well inside its domain.
SAFE_BOUND = 3.0
VALUE_RANGE = 1.5


@dataclass(frozen=True)
class Program:
    """``loss(params)``: the ops applied to ``params["x"]``, then the reduction."""

    ops: tuple[tuple, ...]
    reduction: str
    dtype: np.dtype
    params: dict[str, np.ndarray] = field(compare=False)
    weights: np.ndarray | None = field(default=None, compare=False)

    def describe(self) -> str:
        parts = [op[0] if op[0] not in ("affine", "scale") else f"{op[0]}[{op[1]}]" for op in self.ops]
        return " -> ".join(["x", *parts, self.reduction]) + f" ({self.dtype})"

    def loss(self, p: dict[str, np.ndarray]) -> float:
        h = p["x"]
        for op in self.ops:
            h = _forward(op, h, p)
        return float(_reduce(self.reduction, h, self._weights(h.dtype)))

    def _weights(self, dtype):
        return None if self.weights is None else self.weights.astype(dtype)

    def grad(self, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The exact gradient (float64 reverse mode), returned in each parameter's dtype."""
        q = {name: np.asarray(value, dtype=np.float64) for name, value in p.items()}
        values = [q["x"]]
        for op in self.ops:
            values.append(_forward(op, values[-1], q))
        cotangent = _reduce_vjp(self.reduction, values[-1], self._weights(np.float64))
        grads = {name: np.zeros_like(value) for name, value in q.items()}
        for op, h in zip(reversed(self.ops), reversed(values[:-1])):
            cotangent = _vjp(op, h, q, cotangent, grads)
        grads["x"] += cotangent
        return {name: grads[name].astype(np.asarray(p[name]).dtype) for name in p}


def _sigmoid(h):
    return 1 / (1 + np.exp(-h))


def _forward(op, h, p):
    kind = op[0]
    if kind == "affine":
        return p[f"W{op[1]}"] @ h + p[f"b{op[1]}"]
    if kind == "scale":
        return h * p[f"u{op[1]}"]
    if kind == "tanh":
        return np.tanh(h)
    if kind == "sigmoid":
        return _sigmoid(h)
    if kind == "exp":
        return np.exp(h)
    if kind == "log":
        # log1p, as careful code writes it: log(1 + h*h) loses everything below 1e-16 to the
        # rounding of 1 + h*h (tests/test_bad_input.py, loss-cancels-to-a-staircase, covers that)
        return np.log1p(h * h)
    if kind == "square":
        return h * h
    if kind == "softmax":
        e = np.exp(h - np.max(h))
        return e / np.sum(e)
    raise ValueError(kind)


def _vjp(op, h, p, v, grads):
    """Cotangent of the op's input, accumulating parameter gradients into `grads`."""
    kind = op[0]
    if kind == "affine":
        W = p[f"W{op[1]}"]
        grads[f"W{op[1]}"] += np.outer(v, h)
        grads[f"b{op[1]}"] += v
        return W.T @ v
    if kind == "scale":
        u = p[f"u{op[1]}"]
        grads[f"u{op[1]}"] += v * h
        return v * u
    if kind == "tanh":
        return v * (1 - np.tanh(h) ** 2)
    if kind == "sigmoid":
        s = _sigmoid(h)
        return v * s * (1 - s)
    if kind == "exp":
        return v * np.exp(h)
    if kind == "log":
        return v * 2 * h / (1 + h * h)
    if kind == "square":
        return v * 2 * h
    if kind == "softmax":
        s = _forward(op, h, p)
        return s * (v - np.dot(v, s))
    raise ValueError(kind)


def _reduce(reduction, h, weights):
    if reduction == "sum":
        return np.sum(h)
    if reduction == "mean":
        return np.mean(h)
    if reduction == "dot":
        return np.dot(weights, h)
    if reduction == "logsumexp":
        top = np.max(h)
        return top + np.log(np.sum(np.exp(h - top)))
    raise ValueError(reduction)


def _reduce_vjp(reduction, h, weights):
    if reduction == "sum":
        return np.ones_like(h)
    if reduction == "mean":
        return np.full_like(h, 1.0 / h.size)
    if reduction == "dot":
        return np.array(weights, dtype=np.float64)
    if reduction == "logsumexp":
        e = np.exp(h - np.max(h))
        return e / np.sum(e)
    raise ValueError(reduction)


def build(plan: list[tuple], reduction: str, n0: int, dtype, seed: int) -> Program:
    """Turn a drawn plan into a Program with parameter values, inserting tanh where needed."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)

    def values(*shape):
        return rng.uniform(-VALUE_RANGE, VALUE_RANGE, shape).astype(dtype)

    params = {"x": values(n0)}
    ops: list[tuple] = []
    width, bound = n0, VALUE_RANGE
    for step in plan:
        kind = step[0]
        if kind == "softmax" and width == 1:
            kind = "sigmoid"  # the softmax of one number is the constant 1: nothing left to check
        if kind in ("exp", "log", "square", "affine", "scale") and bound > SAFE_BOUND:
            ops.append(("tanh",))
            bound = 1.0
        if kind == "affine":
            i, out = len(ops), step[1]
            params[f"W{i}"], params[f"b{i}"] = values(out, width), values(out)
            ops.append(("affine", i))
            bound, width = VALUE_RANGE * (width * bound + 1), out
        elif kind == "scale":
            i = len(ops)
            params[f"u{i}"] = values(width)
            ops.append(("scale", i))
            bound *= VALUE_RANGE
        else:
            ops.append((kind,))
            bound = {"tanh": 1.0, "sigmoid": 1.0, "softmax": 1.0, "exp": float(np.exp(bound)),
                     "log": float(np.log1p(bound**2)), "square": bound**2}[kind]  # fmt: skip
    if ops and ops[-1][0] == "softmax" and reduction in ("sum", "mean"):
        reduction = "dot"  # softmax sums to 1: its sum has a zero gradient, nothing to check
    weights = rng.standard_normal(width) if reduction == "dot" else None
    return Program(tuple(ops), reduction, dtype, params, weights)


@st.composite
def programs(draw, dtype) -> Program:
    """A random Program: 1 to 4 primitives on a vector of 1 to 3 elements."""
    n0 = draw(st.integers(1, 3))
    step = st.one_of(
        st.tuples(st.just("affine"), st.integers(1, 3)),
        st.tuples(st.just("scale")),
        st.tuples(st.sampled_from(UNARY)),
        st.tuples(st.just("softmax")),
    )
    plan = draw(st.lists(step, min_size=1, max_size=4))
    reduction = draw(st.sampled_from(("sum", "mean", "dot", "logsumexp")))
    seed = draw(st.integers(0, 2**32 - 1))
    return build(plan, reduction, n0, dtype, seed)


def seeded_programs(count: int, seed: int, dtype) -> list[Program]:
    """`count` Programs drawn as `programs` draws them, from `seed` alone.

    Hypothesis picks its next example from the verdicts so far; this list is the same whatever
    gradprobe says, so a share counted over it compares across revisions.
    """
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(count):
        n0 = int(rng.integers(1, 4))
        plan: list[tuple] = []
        for _ in range(int(rng.integers(1, 5))):
            kind = int(rng.integers(4))
            if kind == 0:
                plan.append(("affine", int(rng.integers(1, 4))))
            elif kind == 1:
                plan.append(("scale",))
            else:
                plan.append((str(rng.choice(UNARY)),) if kind == 2 else ("softmax",))
        reduction = str(rng.choice(["sum", "mean", "dot", "logsumexp"]))
        drawn.append(build(plan, reduction, n0, dtype, int(rng.integers(2**32))))
    return drawn


@dataclass(frozen=True)
class Mutation:
    """Adds `error` (float64, the shape of tensor `name`) to the exact gradient of `name`."""

    name: str
    direction: np.ndarray  # unit norm
    factor: float  # size of the error in units of the stated resolution

    def apply(self, program: Program, resolution: float):
        """The mutated gradient function and the actual relative size of the error it makes."""
        exact = program.grad(program.params)[self.name].astype(np.float64)
        size = self.factor * resolution * max(float(np.linalg.norm(exact)), np.finfo(np.float64).tiny)

        def grad(p):
            g = program.grad(p)
            g[self.name] = (g[self.name].astype(np.float64) + size * self.direction).astype(g[self.name].dtype)
            return g

        made = grad(program.params)[self.name].astype(np.float64) - exact
        return grad, float(np.linalg.norm(made)) / max(float(np.linalg.norm(exact)), np.finfo(np.float64).tiny)


@st.composite
def mutations(draw, program: Program) -> Mutation:
    """A random error in one tensor: a few elements or all of them, 1.5x to 4000x the resolution."""
    name = draw(st.sampled_from(sorted(program.params)))
    shape = program.params[name].shape
    size = int(np.prod(shape))
    count = draw(st.integers(1, size))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    direction = np.zeros(size)
    direction[rng.choice(size, count, replace=False)] = rng.standard_normal(count)
    if not np.any(direction):
        direction[0] = 1.0
    direction /= np.linalg.norm(direction)
    factor = float(2.0 ** draw(st.floats(np.log2(1.5), 12.0)))
    return Mutation(name, direction.reshape(shape), factor)
