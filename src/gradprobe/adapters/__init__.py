"""Framework adapters: turn PyTorch and JAX code into a loss and a gradient over numpy parameters.

Each adapter only converts: the check itself is `gradprobe.check` (Params, Plan, Estimator,
Judge, Report). They are reached lazily as ``gradprobe.torch`` and ``gradprobe.jax``, so
``import gradprobe`` never imports a framework.
"""
