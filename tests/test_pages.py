"""numpy's huge-page advice is off while a check runs and back as it was afterwards."""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe._errors import UserFunctionError
from gradprobe.estimate._pages import _switch

switch = _switch()
pytestmark = pytest.mark.skipif(switch is None, reason="this numpy has no huge-page switch")


def advice() -> bool:
    """The current setting (the setter returns the previous one; put it back at once)."""
    current = switch(False)
    switch(current)
    return bool(current)


@pytest.fixture(params=[True, False], ids=["advice-on", "advice-off"])
def before(request):
    saved = switch(request.param)
    yield request.param
    switch(saved)


def test_off_during_the_check_and_restored_after(before):
    seen = []

    def loss(p):
        seen.append(advice())
        return float(np.sum(p**2))

    report = gp.check(loss, lambda p: 2 * p, np.arange(1.0, 4.0))
    assert report.status == "pass"
    assert seen and not any(seen)
    assert advice() is before


def test_restored_when_the_loss_raises(before):
    def loss(p):
        raise RuntimeError("boom")

    with pytest.raises(UserFunctionError):
        gp.check(loss, lambda p: 2 * p, np.ones(3))
    assert advice() is before


def test_a_check_inside_a_loss_keeps_it_off_until_the_outer_one_ends(before):
    inner_seen = []

    def inner_loss(p):
        inner_seen.append(advice())
        return float(np.sum(p**2))

    def outer_loss(p):
        gp.check(inner_loss, lambda q: 2 * q, np.ones(2))
        assert advice() is False  # the inner check ended; the outer one still runs
        return float(np.sum(p**2))

    gp.check(outer_loss, lambda p: 2 * p, np.ones(2))
    assert inner_seen and not any(inner_seen)
    assert advice() is before
