"""Diagnosis: how a failing tensor is wrong, read off analytic and numerical values."""

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.judge._diagnosis import diagnose
from gradprobe.judge._verdict import FAIL, KINK, NOISE, NONFINITE, PASS
from gradprobe.examples import deeplearning_ai as dla

RNG = np.random.default_rng(0)
M = RNG.standard_normal((4, 4))
W = RNG.standard_normal((4, 4))


def loss(p):
    return float(np.sum(M * p) + 0.5 * np.sum(p**3))


def grad(p):
    return M + 1.5 * p**2


def diagnosis_of(wrong_grad, params=W, loss=loss, **options):
    report = gp.check(loss, wrong_grad, params, **options)
    tensor = report.tensors["params"]
    assert "\n" not in (tensor.hint or "")  # a hint is one line
    return report.status, tensor.diagnosis, tensor.hint, tensor.scale


def test_the_seed_network_reads_w2_doubled_b1_quadrupled_and_nothing_else():
    X, Y, parameters = dla.gradient_check_n_test_case()
    report = gp.check(*dla.loss_and_grad(X, Y, dla.backward_propagation_n), parameters)
    diagnoses = {name: (t.status, t.diagnosis) for name, t in report.tensors.items()}
    assert diagnoses == {
        "W1": ("pass", None),
        "b1": ("fail", "4.00x"),
        "W2": ("fail", "2.00x"),
        "b2": ("pass", None),
        "W3": ("pass", None),
        "b3": ("pass", None),
    }
    assert report.tensors["W2"].hint.startswith("W2 is exactly 2.00x the numerical gradient: look for a duplicated term")
    assert "4./m instead of 1./m" in report.tensors["b1"].hint


@pytest.mark.parametrize(
    ("factor", "summary", "hint_part"),
    [
        (2.0, "2.00x", "missing 1/2"),
        (0.25, "0.25x", "1/4 of the numerical gradient"),
        (-1.0, "sign flipped", "wrong sign"),
        (-2.0, "-2.00x", "has the wrong sign and is exactly 2.00x"),
        (1.5, "1.50x", "3/2 of the numerical gradient"),
        (1 / 32, "0.03125x (= 1/32)", "mean over 32 items"),
        (32.0, "32.00x", "missing 1/m with a batch of m=32"),
    ],
    ids=["2x", "quarter", "sign", "minus-2x", "three-halves", "read-off-1/32", "read-off-32"],
)
def test_constant_factors_are_numbers(factor, summary, hint_part):
    status, diagnosis, hint, scale = diagnosis_of(lambda p: factor * grad(p))
    assert (status, diagnosis) == ("fail", summary)
    assert hint_part in hint
    assert scale == pytest.approx(factor, rel=1e-6)


def test_one_over_m_is_named_when_the_batch_size_is_given():
    _, diagnosis, hint, _ = diagnosis_of(lambda p: grad(p) / 8, batch_size=8)
    assert diagnosis == "0.125x (= 1/m, m=8)"
    assert "mean over the batch is taken twice" in hint
    _, diagnosis, hint, _ = diagnosis_of(lambda p: grad(p) * 8, batch_size=8)
    assert diagnosis == "8x (= m, m=8)" and "missing 1/m" in hint


def test_transposed():
    status, diagnosis, hint, _ = diagnosis_of(lambda p: grad(p).T)
    assert (status, diagnosis) == ("fail", "transposed")
    assert "swap the operands" in hint


def test_all_zeros_is_a_forgotten_gradient():
    _, diagnosis, hint, scale = diagnosis_of(lambda p: np.zeros_like(p))
    assert diagnosis == "all zeros" and "detached" in hint and scale == 0.0


def test_wrong_rows_and_columns_are_named_with_their_factor():
    rows = np.array([[1.0], [1.0], [3.0], [1.0]])
    _, diagnosis, hint, scale = diagnosis_of(lambda p: grad(p) * rows)
    assert diagnosis == "4 of 16 wrong (all in row 2, 3.00x)"
    assert "(all in row 2)" in hint and scale is None
    _, diagnosis, _, _ = diagnosis_of(lambda p: grad(p) * np.array([1.0, 1.0, 1.0, -1.0]))
    assert diagnosis == "4 of 16 wrong (all in column 3, sign flipped)"


def test_a_few_wrong_elements_are_named():
    off = np.zeros((4, 4))
    off[0, 1], off[3, 2] = 1.0, -1.0
    _, diagnosis, hint, _ = diagnosis_of(lambda p: grad(p) + off)
    assert diagnosis == "2 of 16 wrong (elements (0, 1), (3, 2))"
    assert "indexing, slicing or boundary slip" in hint


def test_vectors_name_elements_and_higher_ranks_name_slices():
    x = np.arange(1.0, 7.0)
    _, diagnosis, _, _ = diagnosis_of(lambda p: 3 * p**2 * np.where(np.arange(6) == 5, 2, 1), x, lambda p: float(np.sum(p**3)))
    assert diagnosis == "1 of 6 wrong (element 5, 2.00x)"
    cube = RNG.standard_normal((3, 4, 2))
    middle = (np.indices(cube.shape)[1] == 1) + 1.0
    _, diagnosis, _, _ = diagnosis_of(lambda p: 3 * p**2 * middle, cube, lambda p: float(np.sum(p**3)))
    assert diagnosis == "6 of 24 wrong (all in [:, 1, :], 2.00x)"


def test_a_value_outside_the_one_sided_slopes_at_a_kink_is_undecided_never_failed():
    # relu'(0) = 3 is no valid subgradient of a lone relu, but the one-sided slopes along a
    # coordinate do not bound what a correct backward returns in general (tied terms: see
    # test_max_pool_tied_over_the_batch_is_never_failed), so a kink leaves the element undecided.
    x = np.array([0.0, 1.0, -1.0, 0.0, 2.0])

    def relu_grad_with_odd_subgradient(p):
        return np.where(p > 0, 1.0, np.where(p < 0, 0.0, 3.0))

    report = gp.check(lambda p: float(np.sum(np.maximum(p, 0))), relu_grad_with_odd_subgradient, x)
    tensor = report.tensors["params"]
    assert report.status == "inconclusive" and tensor.reason == "kink"
    assert tensor.kinks == ((0,), (3,)) and tensor.counts["fail"] == 0
    assert tensor.diagnosis == "2 of 5 at kinks, elements 0, 3"


def test_scattered_errors_have_no_pattern():
    noise = np.random.default_rng(5).standard_normal((4, 4))
    _, diagnosis, hint, _ = diagnosis_of(lambda p: grad(p) + noise)
    assert diagnosis == "16 of 16 wrong" and "recheck its formula" in hint


def test_nan_near_the_point_makes_the_tensor_inconclusive_with_a_diagnosis():
    with np.errstate(invalid="ignore"):
        status, diagnosis, hint, _ = diagnosis_of(
            lambda p: 0.5 / np.sqrt(p), np.array([1e-14, 1.0]), lambda p: float(np.sum(np.sqrt(p)))
        )
    assert (status, diagnosis) == ("inconclusive", "loss NaN/inf near 1 of 2, element 0")
    assert "NaN or inf within a step" in hint


def test_every_element_at_a_kink_is_inconclusive_with_a_diagnosis():
    status, diagnosis, hint, _ = diagnosis_of(
        lambda p: np.where(p > 0, 1.0, 0.0), np.zeros(3), lambda p: float(np.sum(np.maximum(p, 0)))
    )
    assert (status, diagnosis) == ("inconclusive", "every element at a kink")
    assert "random point" in hint


def test_passing_tensors_have_no_diagnosis():
    report = gp.check(loss, grad, W)
    assert report.ok and report.tensors["params"].diagnosis is None and report.tensors["params"].hint is None


# -- the function itself, on synthetic values ---------------------------------------------------------


def _flat(n):
    return np.asarray(n, dtype=float), np.full(len(n), 1e-9), np.full(len(n), 1e-12)


def test_nan_or_inf_in_the_gradient_is_an_error_naming_the_tensor_and_its_elements():
    # Bad input, raised before any work: no report (and no diagnosis row) is made of it.
    gradient = lambda p: np.where(np.arange(p.size).reshape(p.shape) % 7 == 3, np.nan, grad(p))  # noqa: E731
    with pytest.raises(gp.InvalidValue, match=r"`params` at 2 of its 16 element\(s\): \(0, 3\) NaN, \(2, 2\) NaN"):
        gp.check(loss, gradient, W)


def test_nonfinite_codes_without_failures_blame_the_loss():
    numeric, error, floor = _flat([1.0, np.nan, 3.0])
    codes = np.array([PASS, NONFINITE, PASS], dtype=np.int8)
    d = diagnose("w", (3,), np.array([1.0, 2.0, 3.0]), numeric, error, floor, codes)
    assert d.summary == "loss NaN/inf near 1 of 3, element 1"


def test_dead_units_do_not_hide_a_factor():
    # relu units that are off give 0 on both sides; they fit any ratio and must not block "2.00x"
    numeric, error, floor = _flat([0.0, 0.0, 0.0, 1.0, -2.0])
    codes = np.array([PASS, PASS, PASS, FAIL, FAIL], dtype=np.int8)
    d = diagnose("W2", (5,), 2 * numeric, numeric, error, floor, codes)
    assert (d.summary, d.scale) == ("2.00x", pytest.approx(2.0))


def test_undecided_elements_off_by_the_same_factor_make_it_the_tensors():
    # Near a minimum, elements too noisy at the finest step (rough) but 2x their numerical value well
    # beyond their bars are no evidence of a right part: "2.00x", not "3 of 8 wrong ... a slip".
    numeric = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.8, 2.2, -0.7])
    error, floor = 0.02 * np.abs(numeric), np.zeros(8)
    codes = np.array([FAIL] * 3 + [NOISE] * 5, dtype=np.int8)
    assert diagnose("W", (8,), 2 * numeric, numeric, error, floor, codes).summary == "2.00x"
    # The same undecided elements agreeing with their numerical values, under bars wide enough to
    # fit 2x as well: the three wrong ones are named, no factor is claimed for the tensor.
    analytic = numeric.copy()
    analytic[:3] *= 2
    wide = np.where(codes == NOISE, 0.4 * np.abs(numeric), error)
    d = diagnose("W", (8,), analytic, numeric, wide, floor, codes)
    assert d.summary.startswith("3 of 8 wrong (elements 0, 1, 2"), d.summary


def test_a_factor_below_one_fits_within_the_elements_own_bars():
    # A float32 bias gradient taken as a mean over 16 where a sum is meant: a / n = 1/16 up to the
    # float32 rounding of a, which the bars hold. Scaling the bars by 1/16 as well once lost it:
    # "no constant factor, transpose or pattern fits within the error bars".
    rng = np.random.default_rng(3)
    numeric = rng.uniform(1e-4, 1e-3, 8) * rng.choice([-1.0, 1.0], 8)
    error, floor = np.full(8, 1e-10), np.full(8, 1e-12)
    analytic = numeric / 16 + rng.uniform(-0.8e-10, 0.8e-10, 8)
    codes = np.full(8, FAIL, dtype=np.int8)
    assert diagnose("b", (8,), analytic, numeric, error, floor, codes, batch_size=16).summary == "0.0625x (= 1/m, m=16)"


def test_a_slip_is_not_said_where_the_rest_of_the_tensor_is_undecided():
    # An indexing slip leaves the rest of the tensor right; with more of it undecided than passed,
    # that was not shown: the wrong elements are named, the hint asks for the formula.
    numeric = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.8])
    error, floor = 0.01 * np.abs(numeric), np.zeros(6)
    analytic = numeric * np.array([1.7, 1.0, 1.0, 1.0, 1.0, 1.0])
    codes = np.array([FAIL, NOISE, NOISE, KINK, PASS, PASS], dtype=np.int8)
    d = diagnose("W", (6,), analytic, numeric, error, floor, codes)
    assert "slip" not in d.hint and "recheck its formula" in d.hint, d.hint
    codes = np.array([FAIL, PASS, PASS, PASS, NOISE, PASS], dtype=np.int8)
    assert "slip" in diagnose("W", (6,), analytic, numeric, error, floor, codes).hint


def test_kink_elements_are_left_out_of_the_factor():
    numeric, error, floor = _flat([1.0, 2.0, 0.5, 3.0])
    analytic = 2 * numeric
    analytic[2] = 0.0  # a kink: a valid subgradient, not 2x
    codes = np.array([FAIL, FAIL, KINK, FAIL], dtype=np.int8)
    assert diagnose("W", (4,), analytic, numeric, error, floor, codes).summary == "2.00x"


# -- kinks are the numerical side's finding, never a guess from the values ------------------------------


def test_a_wrong_element_on_a_smooth_float32_loss_is_not_blamed_on_a_kink():
    # Its one-sided slopes differ by float32 noise more than by its error bar; before, that alone
    # read as "wrong only at kinks".
    rng = np.random.default_rng(9)
    W = rng.standard_normal((8, 8)).astype(np.float32)
    A, y = rng.standard_normal((16, 8)).astype(np.float32), rng.standard_normal((16, 8)).astype(np.float32)

    def loss(p):
        return np.mean((np.tanh(A @ p) - y) ** 2)

    def grad(p):
        h = np.tanh(A @ p)
        return A.T @ (2 * (h - y) * (1 - h**2)) / h.size

    g0 = grad(W)
    smallest = np.unravel_index(np.argmin(np.abs(g0)), g0.shape)

    def wrong(p):
        g = grad(p).copy()
        g[smallest] += 3e-3 * np.sqrt(np.mean(g0**2))
        return g

    status, diagnosis, _, _ = diagnosis_of(wrong, W, loss)
    assert status == "fail" and diagnosis.startswith(f"1 of 64 wrong (element {tuple(int(i) for i in smallest)}")


def test_some_elements_at_kinks_name_them_when_they_leave_the_tensor_unresolved():
    x = np.array([0.0, 1.0, -2.0, 0.3])
    report = gp.check(lambda p: float(np.sum(np.maximum(p, 0))), lambda p: (p > 0) * 1.0, x)
    t = report.tensors["params"]
    assert (t.status, t.reason, t.diagnosis, t.kinks) == ("inconclusive", "kink", "1 of 4 at kinks, element 0", ((0,),))
    assert "half their jump" in t.hint
    assert "1 of 4 at kinks, element 0" in str(report) and "1 at kinks" not in str(report)


def test_an_inconclusive_tensor_without_noisy_elements_says_its_resolution():
    numeric, error, floor = _flat([1.0, 2.0])
    d = diagnose("w", (2,), numeric, numeric, error, floor, np.array([PASS, PASS], dtype=np.int8), reason="noise",
                 tensor_resolution=0.15)  # fmt: skip
    assert d.summary == "too noisy (resolution 1.5e-01)"


def test_a_gradient_where_the_loss_is_flat_should_be_zero():
    # A bias followed by a normalisation: the loss does not depend on it.
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((16, 5)), rng.standard_normal((16, 3))

    def loss(p):
        z = X @ p["W"] + p["b"]
        zc = z - z.mean(0)
        return float(np.mean((zc / np.sqrt((zc**2).mean(0) + 1e-5) - Y) ** 2))

    params = {"W": 0.5 * rng.standard_normal((5, 3)), "b": 0.1 * rng.standard_normal(3)}
    numeric_w = gp.check(loss, lambda p: {"W": np.zeros((5, 3)), "b": np.zeros(3)}, params).tensors["W"].numeric
    report = gp.check(loss, lambda p: {"W": numeric_w, "b": np.full(3, 0.01)}, params)
    assert report.tensors["b"].status == "fail" and report.tensors["b"].diagnosis == "should be zero"
    assert "the loss is flat along b here" in report.tensors["b"].hint


def test_ragged_losses_say_there_is_no_derivative():
    report = gp.check(lambda p: float(np.sum(np.sin(p))), np.cos, np.array([1e30, -3e30]))
    t = report.tensors["params"]
    assert (report.status, t.reason, t.diagnosis) == ("inconclusive", "noise", "no derivative at this precision")
    assert "neighbouring floating-point values" in t.hint


def test_a_factor_near_one_shows_the_digits_that_make_it_wrong():
    x = np.array([0.5, -1.0, 2.0])
    report = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2 * (1 + 3e-6), x)
    assert report.tensors["params"].diagnosis == "1.000003x"


def test_a_tensor_wrong_at_every_element_is_never_right_except_at_them():
    # A 5-element bias wrong everywhere without a common factor once read "b is right except at 5
    # element(s) (elements 0, 1, 2, 3, 4) ... look for an indexing slip".
    n = np.array([1.0, -2.0, 3.0, 0.5, 1.5])
    a = n + np.array([0.3, -0.1, 0.7, 0.2, -0.4])
    tiny, fail = np.full(5, 1e-9), np.full(5, FAIL, dtype=np.int8)
    d = diagnose("b", (5,), a, n, tiny, tiny, fail)
    assert "numerical gradient except" not in d.hint and "every element" in d.hint and d.summary == "5 of 5 wrong"


def test_the_table_keeps_a_diagnosis_and_its_kink_count_apart():
    # Once "too noisy at 28 of 36 6 at kinks".
    from dataclasses import replace

    from gradprobe.report._text import row
    from gradprobe.report._types import Finding

    tensor = gp.check(loss, grad, W).tensors["params"]
    noisy = Finding("noise", count=2, judged=16)
    undecided = replace(tensor, status="inconclusive", finding=noisy, kinks=((0, 0), (1, 2)))
    assert row(undecided)[-1] == "too noisy at 2 of 16, 2 at kinks"


def test_a_float32_gradient_of_float64_parameters_reads_rounded_to_float32():
    # Once "0.9999999936x: look for a wrong scale factor".
    status, diagnosis, hint, _ = diagnosis_of(lambda p: grad(p).astype(np.float32))
    assert status == "fail" and diagnosis == "rounded to float32" and "float64" in hint
    status, diagnosis, _, _ = diagnosis_of(lambda p: (1.001 * grad(p)).astype(np.float32))  # a real factor as well
    assert status == "fail" and diagnosis == "1.001x"


def test_a_non_deterministic_loss_is_blamed_on_its_randomness_not_on_precision():
    # Once "sin of 1e30 ... check at smaller parameter values" for a loss with random noise.
    rng = np.random.default_rng(0)
    report = gp.check(lambda p: float(np.sum(np.sin(p)) + 0.3 * rng.standard_normal()), np.cos, np.array([0.3, -1.2, 0.7]))
    tensor = report.tensors["params"]
    assert report.status == "inconclusive" and tensor.diagnosis == "non-deterministic loss", report
    assert "seed" in tensor.hint and "1e30" not in tensor.hint
    assert not any("use float64 or smaller parameters" in note for note in report.notes)


LAYOUT_RNG = np.random.default_rng(3)
KA, KB = LAYOUT_RNG.standard_normal((3, 3, 4)), LAYOUT_RNG.standard_normal((3, 3, 4))
K0 = {"K": LAYOUT_RNG.standard_normal((3, 3, 4)), "L": LAYOUT_RNG.standard_normal((3, 3, 4))}


def layout_loss(p):
    return float(np.sum(KA * p["K"] ** 2) + np.sum(KB * np.sin(p["L"])))


def layout_grad(p):
    return {"K": 2 * KA * p["K"], "L": KB * np.cos(p["L"])}


@pytest.mark.parametrize("strategy", ["full", "directional"])
@pytest.mark.parametrize(
    "bug, summary",
    [
        (lambda g: {**g, "K": g["K"].transpose(1, 0, 2)}, "axes permuted (1, 0, 2)"),
        (lambda g: {**g, "K": g["K"][..., ::-1]}, "reversed along axis 2"),  # a kernel not flipped back
        (lambda g: {**g, "K": np.roll(g["K"], 1, axis=2)}, "shifted by 1 along axis 2"),
        (lambda g: {**g, "K": g["L"]}, "the gradient of L"),  # swapped tensors
        (lambda g: {**g, "K": -g["K"]}, "sign flipped"),
    ],
    ids=["permuted", "reversed", "shifted", "swapped", "sign"],
)
def test_rearranged_gradients_are_named_under_every_strategy(bug, summary, strategy, request):
    report = gp.check(layout_loss, lambda p: bug(layout_grad(p)), K0, strategy=strategy)
    assert report.failing == ("K",), report
    diagnosis = report.tensors["K"].diagnosis
    assert diagnosis.startswith(summary), diagnosis
    kind = request.node.callspec.id.split("-")[0]  # the bug's id is its kind
    assert report.tensors["K"].diagnosis_kind == kind and report.to_dict()["tensors"][0]["diagnosis_kind"] == kind
    if strategy == "directional":  # read off sampled elements, then confirmed over the whole tensor
        assert "2 random directions agree" in diagnosis


def test_a_transposed_weight_gradient_and_a_scaled_bias_keep_their_diagnosis_under_random_directions():
    # Once "wrong throughout (16 of 16 sampled elements wrong) ... recheck its formula" and
    # "3 wrong elements ... look for an indexing slip" under the directional strategy.
    rng = np.random.default_rng(0)
    X, W, b = rng.standard_normal((8, 32)), rng.standard_normal((32, 32)) * 0.2, rng.standard_normal(32) * 0.1

    def loss(p):
        return float(np.sum(np.tanh(X @ p["W"] + p["b"]) ** 2))

    def grad(p):
        h = np.tanh(X @ p["W"] + p["b"])
        dz = 2 * h * (1 - h**2)
        return {"W": (X.T @ dz).T, "b": 16 * dz.sum(0)}

    report = gp.check(loss, grad, {"W": W, "b": b}, strategy="directional")
    assert report.tensors["W"].diagnosis.startswith("transposed throughout"), report
    assert report.tensors["b"].diagnosis.startswith("16.00x"), report


def test_a_few_wrong_elements_with_a_common_factor_are_not_called_wrong_throughout():
    # The factor read off the located elements does not hold over the tensor: two random directions refute it.
    def few(p):
        g = layout_grad(p)
        g["K"] = g["K"].copy()
        g["K"][0, 1, 2] *= 2
        g["K"][2, 0, 3] *= 2
        return g

    report = gp.check(layout_loss, few, K0, strategy="directional")
    diagnosis = report.tensors["K"].diagnosis
    assert report.failing == ("K",) and "throughout" not in diagnosis and diagnosis.startswith("2 wrong elements"), report


def test_a_permutation_is_named_in_the_order_that_makes_the_gradient():
    # (1, 2, 0) is not its own inverse: the name once read (2, 0, 1).
    rng = np.random.default_rng(0)
    C = rng.standard_normal((3, 3, 3))
    report = gp.check(lambda p: 0.5 * float(np.sum(C * p**2)), lambda p: np.transpose(C * p, (1, 2, 0)),
                      rng.standard_normal((3, 3, 3)))
    assert report.tensors["params"].diagnosis == "axes permuted (1, 2, 0)"


def ignored_tensor_problem():
    """W drives the loss, U does not (a parameter the loss ignores), 1200 + 1200 elements."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 40))
    params = {"W": rng.standard_normal((40, 30)) * 0.2, "U": rng.standard_normal((40, 30))}

    def loss(p):
        return float(np.sum(np.tanh(X @ p["W"])) / 32)

    def grad(p):
        return {"W": X.T @ (1 - np.tanh(X @ p["W"]) ** 2) / 32, "U": np.zeros_like(p["U"])}

    return loss, grad, params


def test_under_random_directions_an_all_zero_gradient_is_no_other_tensors_and_should_be_zero_is_named():
    loss, grad, params = ignored_tensor_problem()
    zeros = gp.check(loss, lambda p: {**grad(p), "W": np.zeros_like(p["W"])}, params, strategy="directional")
    assert zeros.tensors["W"].diagnosis.startswith("all zeros"), zeros  # once "the gradient of U"
    stray = gp.check(loss, lambda p: {**grad(p), "U": 0.1 * p["U"]}, params, strategy="directional")
    assert stray.failing == ("U",) and stray.tensors["U"].diagnosis.startswith("should be zero throughout"), stray


def test_a_zeroed_column_says_zero_not_0x():
    def zeroed(p):
        g = grad(p).copy()
        g[:, 3] = 0
        return g

    status, diagnosis, hint, _ = diagnosis_of(zeroed)
    assert status == "fail" and "0x" not in diagnosis and "zero" in diagnosis and "column 3" in diagnosis, diagnosis


def test_under_random_directions_a_small_tensor_wrong_everywhere_is_never_right_except_at_its_elements():
    # A 6-element bias off by 1/32 was "6 wrong elements ... right except at 6 elements".
    rng = np.random.default_rng(1)
    X = rng.standard_normal((32, 40))
    params = {"W": rng.standard_normal((40, 6)) * 0.2, "c": rng.standard_normal(6) * 0.1}

    def loss(p):
        return float(np.sum(np.tanh(X @ p["W"] + p["c"]) ** 2) / 32)

    def grad(p):
        h = np.tanh(X @ p["W"] + p["c"])
        dz = 2 * h * (1 - h**2) / 32
        return {"W": X.T @ dz, "c": dz.sum(0) / 32}

    report = gp.check(loss, grad, params, strategy="directional")
    tensor = report.tensors["c"]
    assert report.failing == ("c",) and tensor.diagnosis.startswith("0.03125x (= 1/32)"), report
    assert "numerical gradient except" not in tensor.hint


def test_a_taylor_slope_that_reads_right_under_a_fail_says_why():
    # A float32-rounded gradient is off by ~1e-8: too little for the Taylor test, which reads "2".
    report = gp.check(loss, lambda p: grad(p).astype(np.float32), W)
    tensor = report.tensors["params"]
    assert tensor.status == "fail" and tensor.taylor_slope is not None
    line = next(line for line in str(report).splitlines() if "Taylor remainder slope" in line)
    assert tensor.taylor_slope >= 1.5 and "too small for this test to show" in line, line


def test_under_random_directions_a_long_wrong_row_is_named_and_a_float32_gradient_reads_rounded():
    # A row of 64 wrong elements outruns bisection's frontier of 32: it once read "wrong in more than
    # 32 places (0 of 16 sampled elements wrong)" with a hint about scattered elements.
    rng = np.random.default_rng(2)
    X = rng.standard_normal((16, 40))
    params = {"W": rng.standard_normal((40, 64)) * 0.2, "c": rng.standard_normal(64) * 0.1}

    def loss(p):
        return float(np.sum(np.tanh(X @ p["W"] + p["c"]) ** 2))

    def grad(p):
        h = np.tanh(X @ p["W"] + p["c"])
        dz = 2 * h * (1 - h**2)
        return {"W": X.T @ dz, "c": dz.sum(0)}

    def row(p):
        g = grad(p)
        g["W"][2] *= 1.5
        return g

    report = gp.check(loss, row, params, strategy="directional")
    assert report.failing == ("W",) and "all in row 2" in report.tensors["W"].diagnosis, report
    rounded = gp.check(loss, lambda p: {k: v.astype(np.float32) for k, v in grad(p).items()}, params,
                       strategy="directional")
    assert all(rounded.tensors[name].diagnosis.startswith("rounded to float32") for name in rounded.failing), rounded


def test_a_wrong_slice_is_named_under_both_strategies_and_many_wrong_rows_keep_their_factor():
    # A conv kernel's output channel 1 doubled: "wrong throughout (3 of 16 sampled elements wrong)
    # ... no constant factor" under directional; rows 0-3 of 8 doubled: "wrong at most elements with
    # no constant factor, transpose or pattern" under full.
    rng = np.random.default_rng(0)
    A = rng.standard_normal((8, 8, 3, 3))

    def channel(p):
        g = np.cos(p) * A
        g[1] *= 2
        return g

    K = rng.standard_normal((8, 8, 3, 3))
    loss = lambda p: float(np.sum(np.sin(p) * A))  # noqa: E731
    full = gp.check(loss, channel, K, strategy="full").tensors["params"]
    directional = gp.check(loss, channel, K, strategy="directional").tensors["params"]
    assert full.diagnosis == "72 of 576 wrong (all in [1, :, :, :], 2.00x)"
    assert directional.diagnosis.startswith("wrong elements all in [1, :, :, :], 2.00x"), directional.diagnosis
    B = rng.standard_normal((8, 27))

    def rows(p):
        g = np.cos(p) * B
        g[:4] *= 2
        return g

    half = gp.check(lambda p: float(np.sum(np.sin(p) * B)), rows, rng.standard_normal((8, 27))).tensors["params"]
    assert half.diagnosis == "108 of 216 wrong (all in rows 0-3, 2.00x)" and "no constant factor" not in half.hint
