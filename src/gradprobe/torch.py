"""`gradprobe.torch`: check PyTorch gradients (``import gradprobe.torch``, or ``gp.torch``).

The public face of `gradprobe.adapters.torch`, where the code lives. Importing it imports
PyTorch, which ``import gradprobe`` alone never does; without PyTorch it says how to install it.
"""

import importlib.util

if importlib.util.find_spec("torch") is None:
    raise ModuleNotFoundError(
        "gradprobe.torch needs PyTorch, which is not installed: pip install gradprobe[torch]", name="torch"
    )

from .adapters.torch import assert_gradients as assert_gradients, check as check, check_module as check_module  # noqa: E402

__all__ = ["assert_gradients", "check", "check_module"]
