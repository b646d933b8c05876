"""Doctest collection of the optional framework adapters only where the framework is installed."""

import importlib.util

collect_ignore = [
    f"src/gradprobe/adapters/{framework}.py"
    for framework in ("torch", "jax")
    if importlib.util.find_spec(framework) is None
]
