"""Text and terminal rendering: the summary line, the table, worst elements, hints, the reproduce line."""

import io
import re

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.report import _terminal as _terminal
from gradprobe.report._text import render_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def failing():
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 4)), "x": np.ones(4)}

    def loss(p):
        return np.sum(np.tanh(p["W"] @ p["x"]))

    def grad(p):
        s = 1 - np.tanh(p["W"] @ p["x"]) ** 2
        return {"W": np.outer(s, p["x"]), "x": p["W"].T @ s * 2}

    return loss, grad, params, gp.check(loss, grad, params)


def test_plain_text_has_summary_table_worst_elements_hint_and_reproduce_line(failing):
    *_, report = failing
    lines = str(report).splitlines()
    assert lines[0] == "gradprobe FAIL: 1 of 2 tensors wrong (x)"
    assert lines[1].startswith("  16 parameters, ") and "resolution" in lines[1]
    assert lines[2].split() == ["tensor", "shape", "status", "difference", "resolution", "diagnosis"]
    assert lines[3].split()[:4] == ["W", "(3,", "4)", "pass"]
    assert lines[4].split()[:4] == ["x", "(4,)", "FAIL", "3.3e-01"] and lines[4].endswith("2.00x")
    worst = [line for line in lines if line.lstrip().startswith("at (")]
    assert len(worst) == 3 and all("analytic" in w and "numeric" in w and "±" in w for w in worst)
    assert any(line.strip().startswith("hint: x is exactly 2.00x") for line in lines)
    assert lines[-1] == "  reproduce: gp.check(loss, grad, params, strategy='full', method='richardson', seed=0)"
    assert not ANSI.search(str(report))


def test_passing_report_shows_no_elements_or_hints():
    report = gp.check(lambda p: float(np.sum(p**2)), lambda p: 2 * p, np.arange(3.0))
    text = str(report)
    assert text.startswith("gradprobe PASS: gradient correct to within")
    assert "at (" not in text and "hint" not in text


def test_reproduce_line_names_non_default_options_and_reruns_the_same_check(failing):
    loss, grad, params, _ = failing
    report = gp.check(loss, grad, params, seed=5, rtol=1e-3, batch_size=4)
    line = report.reproduce
    assert line == (
        "gp.check(loss, grad, params, strategy='full', method='richardson', seed=5, rtol=0.001, batch_size=4)"
    )
    again = eval(line, {"gp": gp, "loss": loss, "grad": grad, "params": params})
    assert again == report


def test_reproduce_line_can_be_replaced(failing):
    *_, report = failing
    text = render_text(report, reproduce="gradprobe check f.py:g --seed 0")
    assert text.splitlines()[-1] == "  reproduce: gradprobe check f.py:g --seed 0"


def test_rich_output_is_coloured_on_a_terminal(failing):
    pytest.importorskip("rich")
    *_, report = failing
    out = io.StringIO()
    _terminal.show(report, out, color="always")
    text = out.getvalue()
    assert ANSI.search(text)  # colour
    plain = ANSI.sub("", text)
    assert "gradprobe FAIL: 1 of 2 tensors wrong (x)" in plain
    assert re.search(r"x\s+\(4,\)\s+FAIL\s+3\.3e-01\s+\d\.\de-\d\d\s+2\.00x", plain)
    assert "hint: x is exactly 2.00x" in plain
    # the reproduce line is never wrapped, so it pastes as is
    assert "  reproduce: gp.check(loss, grad, params, strategy='full', method='richardson', seed=0)\n" in plain


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_on_a_terminal(failing):
    pytest.importorskip("rich")
    *_, report = failing
    for stream, coloured in [(io.StringIO(), False), (_FakeTerminal(), True)]:
        _terminal.show(report, stream)
        assert bool(ANSI.search(stream.getvalue())) is coloured
    never = _FakeTerminal()
    _terminal.show(report, never, color="never")
    assert never.getvalue() == str(report) + "\n"


def test_plain_text_without_rich(failing, monkeypatch):
    *_, report = failing
    monkeypatch.setattr(_terminal, "_rich_available", lambda: False)
    out = _FakeTerminal()
    _terminal.show(report, out, color="always")
    assert out.getvalue() == str(report) + "\n"


def test_report_show_and_rich_protocol(failing, capsys):
    rich_console = pytest.importorskip("rich.console")
    *_, report = failing
    report.show()
    assert capsys.readouterr().out == str(report) + "\n"  # captured stdout is not a terminal
    console = rich_console.Console(file=io.StringIO(), width=120, color_system=None)
    console.print(report)
    printed = console.file.getvalue()
    assert "gradprobe FAIL" in printed and "2.00x" in printed and "reproduce:" in printed


def test_every_renderer_shows_a_randomized_checks_guarantee():
    pytest.importorskip("rich")
    x = np.random.default_rng(3).standard_normal(50)
    report = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2, x, strategy="directional")
    assert report.guarantee is not None
    out = io.StringIO()
    _terminal.show(report, out, color="always")
    for text in (str(report), ANSI.sub("", out.getvalue()), report._repr_html_()):
        assert "guarantee: " in text


def test_worst_elements_show_the_digits_where_analytic_and_numeric_part():
    x = np.array([0.5, -1.0, 2.0])
    report = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2 * (1 + 1.5e-8), x)
    assert report.status == "fail"
    worst = [line.split() for line in str(report).splitlines() if line.lstrip().startswith("at (")]
    for words in worst:
        analytic, numeric = words[words.index("analytic") + 1], words[words.index("numeric") + 1]
        assert analytic != numeric and len(analytic.split("e")[0].replace(".", "").lstrip("-")) == 10
    assert "analytic  1.200000018e+01  numeric  1.200000000e+01" in str(report)
    html = report.to_html()
    assert "1.200000018e+01" in html and "1.200000000e+01" in html


def test_a_large_disagreement_keeps_seven_digits(failing):
    *_, report = failing
    worst = [line for line in str(report).splitlines() if line.lstrip().startswith("at (")]
    assert all(re.search(r"analytic +-?\d\.\d{6}e[+-]\d\d +numeric +-?\d\.\d{6}e", w) for w in worst)
