"""A small numpy problem shared by the report tests: `W` with two wrong elements, `b` scaled."""

import numpy as np


def two_wrong_elements(rows: int, columns: int, bias_factor: float = 1.0):
    """(loss, grad, params): `W` (rows x columns) with elements (3, 5) doubled and (4, 7) sign
    flipped in its gradient, `b` (columns,) with its gradient times `bias_factor`; float64."""
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((rows, columns)), "b": rng.standard_normal(columns)}

    def loss(p):
        return float(np.sum(np.tanh(p["W"]) ** 2) + np.sum(np.sin(p["b"])))

    def grad(p):
        t = np.tanh(p["W"])
        g = 2 * t * (1 - t**2)
        g[3, 5] *= 2.0
        g[4, 7] *= -1.0
        return {"W": g, "b": bias_factor * np.cos(p["b"])}

    return loss, grad, params
