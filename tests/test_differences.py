"""The Estimator (gradprobe.estimate._differences): estimates, error bars, jumps, steps."""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.estimate import _differences as fd
from gradprobe.params._params import Params


def ladder(f, x0, t, levels=3):
    """Values, displacements and the point's value of `f` on a step ladder around `x0`."""
    offsets = np.concatenate([fd.level_offsets(k) for k in range(levels)]) * t
    values = np.array([[f(x0 + o) for o in offsets]])
    return values, offsets[None, :], f(x0)


def estimate(f, x0, t, sigma=1e-16, levels=3, method="richardson", slope=0.0):
    values, moved, f0 = ladder(f, x0, t, levels)
    return fd.finite_differences(method, f0, values, slope * moved, moved, np.array([t]), sigma)


@pytest.mark.parametrize("levels", [2, 3, 5])
def test_richardson_error_bar_covers_the_truth(levels):
    e = estimate(np.exp, 0.3, 2e-4, levels=levels)
    assert abs(e.numeric[0] - np.exp(0.3)) <= e.error[0] / fd.ERROR_BAR_FACTOR
    assert e.error[0] < (1e-7 if levels == 2 else 1e-10) and not e.rough[0]


def test_three_levels_beat_two_on_a_curved_function():
    two, three = estimate(np.sin, 0.7, 0.05, levels=2), estimate(np.sin, 0.7, 0.05, levels=3)
    assert three.truncation[0] < two.truncation[0] / 100
    assert abs(three.numeric[0] - np.cos(0.7)) <= three.error[0]


def test_central_uses_the_finest_two_levels():
    e = estimate(np.exp, 0.0, 1e-3, levels=2, method="central")
    assert abs(e.numeric[0] - 1) <= e.error[0] and e.step[0] == 1e-3


def test_a_two_level_richardson_estimate_never_settles():
    # One jump estimate cannot rule out several small kinks inside the step.
    assert not estimate(np.exp, 0.0, 2e-4, levels=2).settled[0]
    assert estimate(np.exp, 0.0, 2e-4, levels=3).settled[0]


def test_round_off_bar_follows_the_noise_and_the_step():
    e1, e2 = (estimate(np.exp, 0.0, t, sigma=1e-8, levels=2) for t in (1e-2, 5e-3))
    assert e2.roundoff[0] == pytest.approx(2 * e1.roundoff[0])
    assert estimate(np.exp, 0.0, 1e-2, sigma=2e-8, levels=2).roundoff[0] == pytest.approx(2 * e1.roundoff[0])


def test_rounding_of_large_values_is_part_of_the_noise():
    values, moved, f0 = ladder(lambda x: 1e6 + x, 0.0, 1e-3)
    quiet = fd.finite_differences("richardson", f0, values, 0 * moved, moved, np.array([1e-3]), 0.0)
    aware = fd.finite_differences("richardson", f0, values, 0 * moved, moved, np.array([1e-3]), 0.0, rounding=1.1e-16)
    assert quiet.roundoff[0] == 0 and aware.roundoff[0] > 0 and aware.noise[0] == pytest.approx(1.1e-10, rel=1e-3)


def test_relu_at_the_point_is_a_jump_between_the_one_sided_slopes():
    e = estimate(lambda x: max(x, 0.0), 0.0, 1e-2)
    assert e.rough[0] and e.jump[0] == pytest.approx(1.0)
    assert e.right[0] == pytest.approx(1.0) and e.left[0] == pytest.approx(0.0)


def test_a_kink_at_the_point_keeps_its_jump_down_the_ladder():
    e = estimate(lambda x: abs(x), 0.0, 1e-2, levels=5)
    assert e.at_point[0] and e.kink[0] and e.jump[0] == pytest.approx(2.0)


def test_a_kink_off_the_point_is_not_at_the_point():
    e = estimate(lambda x: max(x - 3e-3, 0.0), 0.0, 1e-2, levels=5)
    assert not e.at_point[0]


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_no_kink_position_hides_an_error_beyond_the_bar(side):
    """The error-bar guarantee, noise-free, over kink positions throughout the step: wherever the
    window does not call itself rough, the estimate is within its error bar."""
    t, smooth = 1.0, lambda x: 0.1 * np.sin(x)
    for alpha in np.linspace(-1.3, 1.3, 2601):
        f = lambda x, a=alpha: smooth(x) + max(side * (x - a * t), 0.0)  # noqa: E731
        true = 0.1 + (side if side * (0 - alpha * t) > 0 else 0.0)
        e = estimate(f, 0.0, t, sigma=1e-12)
        if not e.rough[0]:
            assert abs(e.numeric[0] - true) <= e.error[0] + 1e-9, alpha


def test_rounded_displacements_are_used_as_they_are():
    x0, t = np.float32(0.3), 1e-3
    offsets = np.concatenate([fd.level_offsets(k) for k in range(3)]) * t
    moved = (np.array(x0 + offsets, dtype=np.float32).astype(float) - float(x0))[None, :]
    values = 3.0 * (float(x0) + moved)
    e = fd.finite_differences("richardson", 3.0 * float(x0), values, 0 * moved, moved, np.array([t]), 0.0)
    assert e.numeric[0] == pytest.approx(3.0, rel=1e-12)


def test_nonfinite_values_make_a_nonfinite_estimate():
    e = estimate(lambda x: np.log(x) if x > 0 else np.nan, 1e-3, 1e-2)
    assert not e.finite[0] and not e.settled[0]


def test_complex_step_is_exact_to_rounding():
    x, t = 0.7, 1e-20
    e = fd.complex_step(np.array([np.sin(x + 1j * t)]), np.array([t]), np.array([np.cos(x)]))
    assert abs(e.numeric[0] - np.cos(x)) <= e.error[0] < 1e-13


def test_rescaling_the_noise_widens_the_bars_and_calms_the_jumps():
    e = estimate(np.exp, 0.0, 1e-2, sigma=1e-12)
    wider = fd.rescale_noise(e, 1e-10)
    assert wider.roundoff[0] == pytest.approx(100 * e.roundoff[0])
    assert wider.error[0] > e.error[0] and wider.significance[0] == pytest.approx(e.significance[0] / 100)


def test_merge_and_take_round_trip():
    a, b = estimate(np.exp, 0.0, 1e-2), estimate(np.sin, 0.0, 1e-2)
    both = fd.merge(fd.merge(a, a, np.array([0])), b, np.array([0]))
    assert both.numeric[0] == b.numeric[0] and both.take(np.array([0])).numeric[0] == b.numeric[0]


# -- steps -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=["float16", "float32", "float64"])
def test_steps_grow_with_the_noise_within_bounds(dtype):
    p = Params(np.array([1.0, 2.0, 0.5], dtype=dtype))
    eps = float(np.finfo(dtype).eps)
    quiet, noisy = (fd.choose_steps(p, s, np.ones(3), "richardson") for s in (eps, 1e3 * eps))
    assert np.all(noisy >= quiet)
    scales = fd.element_scales(p)
    assert np.all(quiet / scales >= eps**0.25 / 2) and np.all(noisy / scales <= 0.5)


def test_steps_sit_on_a_fixed_grid_so_a_small_bug_does_not_move_them():
    p = Params(np.linspace(0.1, 2.0, 7))
    g = np.cos(p.values)
    same = fd.choose_steps(p, 1e-15, g, "richardson") == fd.choose_steps(p, 1e-15, g * (1 + 1e-3), "richardson")
    assert np.mean(same) >= 6 / 7
    exponents = np.log2(fd.choose_steps(p, 1e-15, g, "richardson")) - 0.5
    assert np.allclose(exponents, np.round(exponents))


def test_a_zero_tensor_takes_its_scale_from_the_others_at_most_one():
    p = Params({"big": np.full(3, 1e30), "zero": np.zeros(2, dtype=np.float16)})
    assert np.all(fd.element_scales(p)[3:] == 1.0)


def test_rms_does_not_overflow():
    assert fd.rms(np.array([3e200, 4e200])) == pytest.approx(np.sqrt(12.5) * 1e200)
    assert fd.rms(np.zeros(3)) == 0.0


def test_the_gradient_under_test_decides_only_how_far_an_element_is_refined():
    # Its values never enter an estimate or its bar: elements estimated alike in two checks of
    # different gradients have the very same numerical value; those the wrong gradient sent down
    # their ladders agree with the screening estimates within both bars.
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    loss = lambda p: float(np.sum(np.tanh(p) ** 2))  # noqa: E731
    right = lambda p: 2 * np.tanh(p) * (1 - np.tanh(p) ** 2)  # noqa: E731
    wrong = lambda p: right(p) * (1 + 1e-5 * np.isin(np.arange(40), [5, 11, 30]))  # noqa: E731
    a, b = gp.check(loss, right, x), gp.check(loss, wrong, x)
    ta, tb = a.tensors["params"], b.tensors["params"]
    assert a.status == "pass" and b.status == "fail" and tb.counts["fail"] == 3
    alike = ta.error_bar == tb.error_bar
    assert alike.sum() >= 30 and np.array_equal(ta.numeric[alike], tb.numeric[alike])
    assert np.all(np.abs(ta.numeric - tb.numeric) <= ta.error_bar + tb.error_bar)


def test_an_error_bar_that_overflows_is_infinite_not_a_non_finite_loss():
    # A subnormal step: the loss's noise over it is more than the largest float.
    t = np.array([1e-320])
    moved = t * np.array([[1, -1, 0.5, -0.5, 0.25, -0.25]])
    values = 1.0 + np.zeros_like(moved)
    with np.errstate(all="raise"):  # no warning escapes
        e = fd.finite_differences("richardson", 1.0, values, 0 * moved, moved, t, 1e-10)
    assert e.numeric[0] == 0 and e.error[0] == np.inf and bool(e.finite[0])
    grown = fd.rescale_noise(e, 1e-10)
    assert grown.error[0] == np.inf and not np.isnan(grown.error[0])


def test_the_ladder_remembers_a_kink_seen_on_the_way_down():
    from gradprobe.estimate._ladder import Ladder

    kink_at = 1.2e-4  # relu's kink inside the first steps (1e-3, 5e-4, ...), clear of the finer ones

    def evaluate_level(which, level):
        offsets = fd.level_offsets(level)[None, :] * 1e-3
        values = np.maximum(offsets - kink_at, 0.0) + 2.0 * offsets
        return values, 0 * offsets, offsets

    ladder = Ladder(evaluate_level, "richardson", 0.0, np.array([1e-3]), 1e-16, deepest=np.array([12]))
    ladder.descend(np.arange(1))
    assert bool(ladder.kinked[0]) and bool(ladder.estimates.kinked[0])
    assert abs(ladder.estimates.numeric[0] - 2.0) <= ladder.estimates.error[0]
