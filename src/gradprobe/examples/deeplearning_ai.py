"""The deeplearning.ai "Gradient Checking" assignment, as published, with its legacy API.

A 1-D check of ``J = theta * x`` and a 3-layer network (LINEAR-RELU-LINEAR-RELU-LINEAR-SIGMOID)
whose `backward_propagation_n` has the two planted bugs of the course (``dW2`` doubled, ``db1``
using ``4./m``); `backward_propagation_n_fixed` is the corrected version. The legacy
`gradient_check` and `gradient_check_n` use the course's rule (epsilon 1e-7, threshold 1e-7),
print its messages and return its numbers:

>>> x, y, parameters = gradient_check_n_test_case()
>>> cost, cache = forward_propagation_n(x, y, parameters)
>>> d = gradient_check_n(parameters, backward_propagation_n(x, y, cache), x, y)  # doctest: +ELLIPSIS
\x1b[93mThere is a mistake in the backward propagation! difference = 0.285093156776...
>>> bool(np.isclose(d, 0.2850931567761623))
True

`loss_and_grad` adapts the network to `gradprobe.check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

#: The network's parameters, in the course's order, with the shapes of its test case.
SHAPES: dict[str, tuple[int, ...]] = {
    "W1": (5, 4),
    "b1": (5, 1),
    "W2": (3, 5),
    "b2": (3, 1),
    "W3": (1, 3),
    "b3": (1, 1),
}


# -- 1-D: J(theta) = theta * x ---------------------------------------------------------------------


def forward_propagation(x, theta):
    """J = theta * x."""
    return theta * x


def backward_propagation(x, theta):
    """dJ/dtheta = x."""
    return x


def gradient_check(x, theta, epsilon=1e-7):
    """The course's 1-D check: central difference, one relative difference, threshold 1e-7.

    >>> print(gradient_check(2, 4))
    The gradient is correct!
    2.919335883291695e-10
    """
    J_plus = forward_propagation(x, theta + epsilon)
    J_minus = forward_propagation(x, theta - epsilon)
    gradapprox = (J_plus - J_minus) / (2 * epsilon)
    grad = backward_propagation(x, theta)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    difference = numerator / denominator
    if difference < 1e-7:
        print("The gradient is correct!")
    else:
        print("The gradient is wrong!")
    return difference


# -- N-D: the 3-layer network ----------------------------------------------------------------------


def relu(x):
    return np.maximum(0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def forward_propagation_n(X, Y, parameters):
    """Cost (binary cross-entropy averaged over the m examples) and the cache for backprop."""
    m = X.shape[1]
    W1, b1 = parameters["W1"], parameters["b1"]
    W2, b2 = parameters["W2"], parameters["b2"]
    W3, b3 = parameters["W3"], parameters["b3"]
    Z1 = np.dot(W1, X) + b1
    A1 = relu(Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = relu(Z2)
    Z3 = np.dot(W3, A2) + b3
    A3 = sigmoid(Z3)
    logprobs = np.multiply(-np.log(A3), Y) + np.multiply(-np.log(1 - A3), 1 - Y)
    cost = 1.0 / m * np.sum(logprobs)
    cache = (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3)
    return cost, cache


def _backward(X, Y, cache, dW2_factor: float, db1_numerator: float):
    m = X.shape[1]
    (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3) = cache
    dZ3 = A3 - Y
    dW3 = 1.0 / m * np.dot(dZ3, A2.T)
    db3 = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3)
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1.0 / m * np.dot(dZ2, A1.T) * dW2_factor
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = db1_numerator / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dZ3": dZ3, "dW3": dW3, "db3": db3,
            "dA2": dA2, "dZ2": dZ2, "dW2": dW2, "db2": db2,
            "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}  # fmt: skip


def backward_propagation_n(X, Y, cache):
    """The course's backprop with its two planted bugs: ``dW2`` is doubled, ``db1`` uses ``4./m``."""
    return _backward(X, Y, cache, dW2_factor=2.0, db1_numerator=4.0)


def backward_propagation_n_fixed(X, Y, cache):
    """The corrected backprop."""
    return _backward(X, Y, cache, dW2_factor=1.0, db1_numerator=1.0)


def dictionary_to_vector(parameters, keys=None):
    """Stack the parameters into one column vector; also return each entry's key.

    `keys` defaults to the course's order (those of `SHAPES` present in `parameters`).
    """
    keys = [k for k in SHAPES if k in parameters] if keys is None else list(keys)
    theta = np.concatenate([np.reshape(parameters[k], (-1, 1)) for k in keys], axis=0)
    names = [k for k in keys for _ in range(np.size(parameters[k]))]
    return theta, names


def vector_to_dictionary(theta, shapes: Mapping[str, tuple[int, ...]] | None = None):
    """Unroll a column vector into the parameter dict; `shapes` defaults to the course's 47."""
    shapes = SHAPES if shapes is None else shapes
    total = sum(int(np.prod(s)) for s in shapes.values())
    if np.size(theta) != total:
        raise ValueError(f"`theta` has {np.size(theta)} entries but `shapes` need {total}.")
    parameters, start = {}, 0
    flat = np.reshape(theta, -1)
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        parameters[key] = flat[start : start + size].reshape(shape)
        start += size
    return parameters


def gradients_to_vector(gradients, keys=None):
    """Stack ``dW1, db1, ...`` into one column vector, in the course's order."""
    keys = ["d" + k for k in SHAPES if "d" + k in gradients] if keys is None else list(keys)
    return np.concatenate([np.reshape(gradients[k], (-1, 1)) for k in keys], axis=0)


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7):
    """The course's N-D check: a central difference per coordinate, one global relative difference.

    Prints the course's message and returns the difference. Threshold 1e-7.
    """
    shapes = {k: np.shape(parameters[k]) for k in SHAPES if k in parameters}
    parameters_values, _ = dictionary_to_vector(parameters)
    grad = gradients_to_vector(gradients)
    num_parameters = parameters_values.shape[0]
    J_plus = np.zeros((num_parameters, 1))
    J_minus = np.zeros((num_parameters, 1))
    gradapprox = np.zeros((num_parameters, 1))
    for i in range(num_parameters):
        thetaplus = np.copy(parameters_values)
        thetaplus[i, :] = thetaplus[i, :] + epsilon
        J_plus[i], _ = forward_propagation_n(X, Y, vector_to_dictionary(thetaplus, shapes))
        thetaminus = np.copy(parameters_values)
        thetaminus[i, :] = thetaminus[i, :] - epsilon
        J_minus[i], _ = forward_propagation_n(X, Y, vector_to_dictionary(thetaminus, shapes))
        gradapprox[i] = (J_plus[i] - J_minus[i]) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    difference = numerator / denominator
    if difference > 1e-7:
        print("\033[93m" + "There is a mistake in the backward propagation! difference = " + str(difference) + "\033[0m")
    else:
        print("\033[92m" + "Your backward propagation works perfectly fine! difference = " + str(difference) + "\033[0m")
    return difference


def gradient_check_n_test_case():
    """The course's test case: ``np.random.seed(1)``, then x, y, W1, b1, W2, b2, W3, b3 in that order."""
    np.random.seed(1)
    x = np.random.randn(4, 3)
    y = np.array([1, 1, 0])
    parameters = {key: np.random.randn(*shape) for key, shape in SHAPES.items()}
    return x, y, parameters


def loss_and_grad(X, Y, backward: Callable = backward_propagation_n) -> tuple[Callable, Callable]:
    """`(loss, grad)` for `gradprobe.check` over the network's parameter dict.

    The gradient dict is returned as the course builds it (``dW1`` ... plus ``dZ3``, ``dA2`` ...);
    gradprobe matches ``dW1`` to ``W1`` and ignores the rest.
    """

    def loss(parameters):
        return forward_propagation_n(X, Y, parameters)[0]

    def grad(parameters):
        return backward(X, Y, forward_propagation_n(X, Y, parameters)[1])

    return loss, grad
