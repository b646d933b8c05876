"""The loss's noise (gradprobe.estimate._noise) and non-determinism, as measured and as used by gp.check."""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.estimate._noise import estimate_noise, noise_from_samples, noise_from_table


def hashed_noise(x, size):
    """Deterministic noise of standard deviation `size`: a function of the point, like rounding."""
    seed = abs(hash(np.asarray(x, dtype=np.float64).tobytes())) % 2**32
    return size * np.random.default_rng(seed).standard_normal()


@pytest.mark.parametrize("sigma", [1e-12, 1e-8, 1e-4])
def test_the_table_finds_the_noise_under_a_smooth_trend(sigma):
    rng = np.random.default_rng(int(-np.log10(sigma)))
    found = []
    for _ in range(20):
        offsets = np.arange(-4, 5) * 1e-3
        value, verdict = noise_from_table(np.cos(1 + offsets) + sigma * rng.standard_normal(9))
        assert verdict == "ok"
        found.append(value)
    assert 0.5 * sigma < np.median(found) < 2 * sigma


def test_a_flat_table_says_the_step_is_too_small():
    assert noise_from_table(np.full(9, 2.0)) == (0.0, "step too small")


def test_a_wide_smooth_table_says_the_step_is_too_large():
    sigma, verdict = noise_from_table(np.exp(np.arange(-4, 5) * 0.5))
    assert verdict == "step too large" and sigma < 1.0  # the fallback: what the 8th difference shows


def test_the_largest_table_estimate_wins_and_never_drops_below_the_floor():
    rng = np.random.default_rng(0)
    quiet = lambda offsets: np.cos(offsets) + 1e-12 * rng.standard_normal(len(offsets))  # noqa: E731
    loud = lambda offsets: np.cos(offsets) + 1e-9 * rng.standard_normal(len(offsets))  # noqa: E731
    estimate = estimate_noise([quiet, loud], 1.0, 1e-4, floor=1e-16)
    assert estimate.reliable and 3e-10 < estimate.sigma < 3e-9 and estimate.nfev == 16
    flat = estimate_noise([lambda offsets: np.ones(len(offsets))], 1.0, 1e-4, floor=1e-16)
    assert not flat.reliable and flat.sigma == 1e-16


def test_noise_from_samples_is_a_robust_standard_deviation():
    samples = 3.0 * np.random.default_rng(1).standard_normal(2000)
    samples[:100] = 1e6  # a few kinks or curved probes
    assert 2.7 < noise_from_samples(samples) < 3.6
    assert np.isnan(noise_from_samples(np.array([np.nan])))


def test_check_measures_the_noise_it_is_given():
    x = np.random.default_rng(2).standard_normal(20)
    loss = lambda p: float(np.sum(np.sin(p))) + hashed_noise(p, 1e-9)  # noqa: E731
    report = gp.check(loss, lambda p: np.cos(p), x)
    assert 0.3e-9 < report.noise < 4e-9
    assert report.status == "pass" and 1e-9 < report.resolution < 1e-3


def test_the_seed_networks_noise_is_real_rounding():
    """The seed's loss (cross-entropy of a sigmoid near 1) loses digits: its measured noise is
    about 40 ulps of the loss, and repeated evaluations at tiny offsets show the same."""
    from gradprobe.examples import deeplearning_ai as dla

    X, Y, parameters = dla.gradient_check_n_test_case()
    loss, grad = dla.loss_and_grad(X, Y, dla.backward_propagation_n_fixed)
    report = gp.check(loss, grad, parameters)
    w = parameters["W1"].copy()
    values = []
    for k in range(-40, 41):
        moved = dict(parameters, W1=w + k * 1e-13 * np.sign(w))
        values.append(loss(moved))
    values = np.array(values)
    fit = np.polyval(np.polyfit(np.arange(81), values, 2), np.arange(81))
    direct = float(np.std(values - fit))
    assert 0.3 * direct < report.noise < 3 * direct
    assert report.ok and report.resolution < 1e-8


# -- non-determinism ------------------------------------------------------------------------------------


def test_a_non_deterministic_loss_is_noted_measured_and_never_called_wrong():
    rng = np.random.default_rng(3)
    x = np.linspace(-1, 1, 5)
    loss = lambda p: float(np.sum(p**2)) + 1e-6 * rng.standard_normal()  # unseeded "dropout"  # noqa: E731
    report = gp.check(loss, lambda p: 2 * p, x)
    assert report.status in ("pass", "inconclusive")
    assert any("non-deterministic" in note for note in report.notes)
    assert report.noise >= 1e-7
    assert gp.check(loss, lambda p: 3 * p, x).status == "fail"  # a gross error still shows


def test_a_non_deterministic_gradient_widens_the_bars_instead_of_failing():
    rng = np.random.default_rng(4)
    x = np.linspace(-1, 1, 5)
    grad = lambda p: 2 * p + 1e-5 * rng.standard_normal(p.shape)  # noqa: E731
    report = gp.check(lambda p: float(np.sum(p**2)), grad, x)
    assert report.status != "fail"
    assert any("`grad` is non-deterministic" in note for note in report.notes)


def test_a_loss_that_moves_in_steps_is_inconclusive_not_wrong():
    def loss(p):  # log(1 + y) for y ~ 1e-16: flat between steps of one ulp of 1
        h = p
        for _ in range(3):
            h = np.log(1 + h * h)
        return float(np.sum(h))

    def grad(p):
        h, slope = p, np.ones_like(p)
        for _ in range(3):
            slope = slope * 2 * h / (1 + h * h)
            h = np.log(1 + h * h)
        return slope

    report = gp.check(loss, grad, np.array([0.01]))
    assert report.status == "inconclusive" and report.tensors["params"].reason == "noise"
    assert report.noise == pytest.approx(2.0**-53)


def test_a_loss_that_varies_as_much_at_every_spacing_is_ragged():
    # sin at 1e30 along a line: on each regular grid an aliased wave (smooth-looking), but just as
    # large at 1e-4 times the spacing.
    rng = np.random.default_rng(0)
    x = 1e30 * rng.uniform(0.5, 2, 3)
    lines = []
    for _ in range(6):
        direction = 1e30 * rng.uniform(0.5, 1.5, 3) * rng.choice([-1, 1], 3)
        lines.append(lambda offsets, d=direction: np.array([np.sum(np.sin(x + o * d)) for o in offsets]))
    estimate = estimate_noise(lines, float(np.sum(np.sin(x))), 1e-11, floor=1e-16)
    assert estimate.ragged and not estimate.reliable


def test_kinks_and_wide_smooth_tables_are_not_ragged():
    kink = estimate_noise([lambda offsets: np.abs(offsets)] * 3, 0.0, 1e-3, floor=1e-16)
    wide = estimate_noise([lambda offsets: np.exp(1e3 * offsets)] * 3, 1.0, 1e-3, floor=1e-16)
    assert not kink.ragged and not wide.ragged


def test_raising_the_noise_leaves_one_note_against_the_tables_own_measure():
    """Two raises once gave two notes, the second comparing the probes with the first raise, and a
    rise too small to print read "more noise (2.35e-16) than ... (2.35e-16)"."""
    from gradprobe.estimate._noise_model import NoiseModel

    notes: list[str] = []
    noise = NoiseModel(notes)
    noise.sigma = 2.351e-16
    assert noise.raise_to(2.352e-16, "difference tables") and notes == []  # prints the same: no note
    noise.raise_to(5e-16, "difference table")
    noise.raise_to(7e-16, "difference tables")
    assert notes == [
        "the probes show more noise (7.00e-16) than the loss's difference tables (2.35e-16); the error bars use the larger."
    ]
    assert noise.sigma == 7e-16
