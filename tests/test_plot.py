"""`report.plot()`: per tensor a heatmap of analytic minus numerical values and a scatter."""

import dataclasses

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.report._plot import tensor_png

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    bug = np.ones((3, 4))
    bug[1, 2] = 3.0

    def loss(p):
        return float(np.sum(p["a"] ** 3) + np.sum(np.sin(p["b"])))

    def grad(p):
        return {"a": 3 * p["a"] ** 2 * bug, "b": np.cos(p["b"])}

    return gp.check(loss, grad, params)


def _scatters(figure):
    return [axes for axes in figure.axes if axes.get_xlabel() == "numerical"]


def _images(figure):
    return [image for axes in figure.axes for image in axes.images]


def test_plot_returns_a_figure_of_the_failing_tensors(report):
    assert report.failing == ("a",)
    figure = report.plot()
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 3  # heatmap, its colour bar, scatter
    heat, scatter = figure.axes[0], _scatters(figure)[0]
    assert heat.get_title() == "a (3, 4): analytic − numerical"
    tensor = report.tensors["a"]
    np.testing.assert_allclose(np.asarray(heat.images[0].get_array()), tensor.analytic - tensor.numeric)
    # the hot cell is the wrong element
    assert np.unravel_index(np.argmax(np.abs(heat.images[0].get_array())), (3, 4)) == (1, 2)
    wrong = [c for c in scatter.collections if c.get_label() == "wrong"]
    assert len(wrong) == 1 and wrong[0].get_offsets().shape == (1, 2)
    np.testing.assert_allclose(wrong[0].get_offsets()[0], [tensor.numeric[1, 2], tensor.analytic[1, 2]])
    assert scatter.get_xlabel() == "numerical" and scatter.get_ylabel() == "analytic"
    assert "a wrong" in figure.get_suptitle()


def test_a_constant_factor_is_drawn_as_a_line():
    report = gp.check(lambda p: float(np.sum(p**3)), lambda p: 6 * p**2, np.arange(1.0, 7.0).reshape(2, 3))
    (scatter,) = _scatters(report.plot())
    labels = [line.get_label() for line in scatter.lines]
    assert "analytic = numerical" in labels and "analytic = 2 × numerical" in labels


def test_tensors_can_be_chosen_and_a_passing_report_plots_all(report):
    figure = report.plot(["a", "b"])
    assert len(_images(figure)) == 2
    assert len(report.plot("b").axes) == 3
    passing = gp.check(
        lambda p: float(np.sum(p["u"] ** 2) + np.sum(p["v"] ** 2)),
        lambda p: {"u": 2 * p["u"], "v": 2 * p["v"]},
        {"u": np.ones(2), "v": np.ones(3)},
    )
    assert len(_images(passing.plot())) == 2
    with pytest.raises(gp.InvalidArgument, match="`tensors` must name tensors of the report"):
        report.plot("nope")


def test_a_tensor_without_per_element_values_says_so(report):
    bare = dataclasses.replace(report.tensors["a"], analytic=None, numeric=None, error_bar=None, worst=())
    odd = dataclasses.replace(report, tensors={**report.tensors, "a": bare})
    figure = odd.plot("a")
    assert "no per-element values" in figure.axes[0].texts[0].get_text()


def test_a_tensor_not_probed_whole_plots_its_elements_with_error_bars(report):
    """Directional and sampled reports: where the listed elements lie, and their values with error
    bars; the wrong ones red, one at a kink orange."""
    tensor = report.tensors["a"]
    worst = (*tensor.worst[:3], gp.Element((2, 3), 1.0, 0.5, error_bar=0.1))
    partial = dataclasses.replace(tensor, analytic=None, numeric=None, error_bar=None, worst=worst, kinks=((2, 3),))
    figure = dataclasses.replace(report, tensors={**report.tensors, "a": partial}).plot("a")
    where, scatter = figure.axes
    assert not _images(figure) and where.get_title() == "a (3, 4): 4 worst of 12 elements probed one by one"
    wrong = [c for c in where.collections if c.get_label() == "wrong"]
    assert len(wrong) == 1 and wrong[0].get_offsets().tolist() == [[2.0, 1.0]]  # (1, 2) at column 2, row 1
    kinks = [c for c in where.collections if c.get_label() == "at a kink"]
    assert kinks[0].get_offsets().tolist() == [[3.0, 2.0]]
    assert scatter.get_xlabel() == "numerical" and scatter.get_ylabel() == "analytic"
    red = next(c for c in scatter.containers if c.get_label() == "wrong")
    points = red.lines[0].get_xydata()
    np.testing.assert_allclose(points, [[tensor.numeric[1, 2], tensor.analytic[1, 2]]])
    bars = red.lines[2][0].get_segments()  # the horizontal error bar: numeric ± error bar
    np.testing.assert_allclose(bars[0][:, 0], tensor.numeric[1, 2] + np.array([-1, 1]) * worst[0].error_bar)


def test_a_directional_report_plots_its_localized_elements():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 60))
    bug = np.ones_like(x)
    bug[5, 17] = 2.0
    report = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2 * bug, x, strategy="directional")
    assert report.failing == ("params",) and report.tensors["params"].analytic is None
    where, scatter = report.plot().axes
    wrong = next(c for c in where.collections if c.get_label() == "wrong")
    assert wrong.get_offsets().tolist() == [[17.0, 5.0]]
    assert png_of(report)[:8] == b"\x89PNG\r\n\x1a\n"


def png_of(report):
    return tensor_png(report.tensors[report.failing[0]])


def test_tensor_png_is_a_png(report):
    png = tensor_png(report.tensors["a"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
