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
    bare = dataclasses.replace(report.tensors["a"], analytic=None, numeric=None, error_bar=None)
    odd = dataclasses.replace(report, tensors={**report.tensors, "a": bare})
    figure = odd.plot("a")
    assert "no per-element values" in figure.axes[0].texts[0].get_text()


def test_tensor_png_is_a_png(report):
    png = tensor_png(report.tensors["a"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
