"""`gradprobe.jax`: check JAX gradients (``import gradprobe.jax``, or ``gp.jax``).

The public face of `gradprobe.adapters.jax`, where the code lives. Importing it imports JAX,
which ``import gradprobe`` alone never does; without JAX it says how to install it.
"""

import importlib.util

if importlib.util.find_spec("jax") is None:
    raise ModuleNotFoundError("gradprobe.jax needs JAX, which is not installed: pip install gradprobe[jax]", name="jax")

from .adapters.jax import assert_gradients as assert_gradients, check as check  # noqa: E402

__all__ = ["assert_gradients", "check"]
