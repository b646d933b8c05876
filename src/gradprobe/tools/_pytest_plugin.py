"""The pytest plugin (registered through the ``pytest11`` entry point).

It adds ``--gradprobe-seed N`` and a ``gradprobe`` fixture whose checks use that seed (0 by
default), so a failure seen in CI can be replayed with the same random directions. The fixture
covers every framework: ``gradprobe.check`` and ``gradprobe.assert_gradients`` for numpy,
``gradprobe.torch.*`` and ``gradprobe.jax.*`` for PyTorch and JAX, imported on first use so that
starting pytest imports neither::

    def test_my_layer(gradprobe):
        gradprobe.assert_gradients(loss, grad, params)
        gradprobe.torch.assert_gradients(MyFunction.apply, x, W)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from ..strategies._assert import assert_gradients
from ..strategies._check import check
from ..report._types import Report

DEFAULT_SEED = 0
_SEED = pytest.StashKey[int]()


@dataclass(frozen=True)
class FrameworkFixture:
    """A framework module's `check` and `assert_gradients` with the session's seed as default."""

    api: ModuleType  # gradprobe.torch or gradprobe.jax
    seed: int

    def check(self, fn: Callable[..., Any], *args: Any, **options: Any) -> Report:
        options.setdefault("seed", self.seed)
        return self.api.check(fn, *args, **options)

    def assert_gradients(self, fn: Callable[..., Any], *args: Any, **options: Any) -> Report:
        __tracebackhide__ = True
        options.setdefault("seed", self.seed)
        return self.api.assert_gradients(fn, *args, **options)


@dataclass(frozen=True)
class TorchFixture(FrameworkFixture):
    """`gradprobe.torch`'s checks, `check_module` included, with the session's seed as default."""

    def check_module(self, module: Any, loss_fn: Callable[..., Any], *batch: Any, **options: Any) -> Report:
        options.setdefault("seed", self.seed)
        return self.api.check_module(module, loss_fn, *batch, **options)


@dataclass(frozen=True)
class GradprobeFixture:
    """`check` and `assert_gradients` with the session's seed as default; `.torch` and `.jax` too."""

    seed: int = DEFAULT_SEED

    def check(self, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, **options: Any) -> Report:
        options.setdefault("seed", self.seed)
        return check(loss, grad, params, **options)

    def assert_gradients(
        self, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, **options: Any
    ) -> Report:
        __tracebackhide__ = True
        options.setdefault("seed", self.seed)
        return assert_gradients(loss, grad, params, **options)

    @property
    def torch(self) -> TorchFixture:
        """``gradprobe.torch``'s checks with this seed (PyTorch is imported here, on first use)."""
        from .. import torch

        return TorchFixture(torch, self.seed)

    @property
    def jax(self) -> FrameworkFixture:
        """``gradprobe.jax``'s checks with this seed (JAX is imported here, on first use)."""
        from .. import jax

        return FrameworkFixture(jax, self.seed)


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise pytest.UsageError(f"--gradprobe-seed must be a non-negative integer, got {text!r}.")
    return seed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradprobe", "gradient checks")
    group.addoption(
        "--gradprobe-seed",
        dest="gradprobe_seed",
        default=None,
        metavar="N",
        help=f"seed for the `gradprobe` fixture's random directions (default {DEFAULT_SEED}).",
    )


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("gradprobe_seed", default=None)
    config.stash[_SEED] = DEFAULT_SEED if text is None else _seed(text)


def pytest_report_header(config: pytest.Config) -> str | None:
    text = config.getoption("gradprobe_seed", default=None)
    return None if text is None else f"gradprobe: seed {config.stash[_SEED]}"


@pytest.fixture
def gradprobe(request: pytest.FixtureRequest) -> GradprobeFixture:
    """`gradprobe.check`, `gradprobe.assert_gradients` and their ``.torch`` and ``.jax`` versions, seeded
    by ``--gradprobe-seed``."""
    return GradprobeFixture(seed=request.config.stash.get(_SEED, DEFAULT_SEED))
