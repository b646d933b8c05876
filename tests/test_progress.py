"""The progress bar: after about a second, on a terminal (or when asked), with rich or tqdm."""

import io

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.strategies import _progress as _progress
from gradprobe.strategies._progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("backend", ["tqdm", "rich"])
def test_the_bar_appears_after_the_delay_with_evaluations_and_the_current_tensor(backend):
    pytest.importorskip(backend)
    stream, clock = Terminal(), Clock()
    with Progress(None, stream=stream, backend=backend, clock=clock, total=100) as progress:
        progress.describe("random directions in W1")
        progress.advance(10)
        assert not progress.shown and stream.getvalue() == ""  # quick checks never flash a bar
        clock.now = 1.5
        progress.advance(30)
        assert progress.shown
    text = stream.getvalue()
    assert "40" in text and "W1" in text


def test_off_when_not_a_terminal_or_when_asked():
    for setting, stream in [(None, io.StringIO()), (False, Terminal())]:
        clock = Clock()
        progress = Progress(setting, stream=stream, clock=clock, backend="tqdm")
        clock.now = 10.0
        progress.advance(5)
        progress.close()
        assert not progress.shown and stream.getvalue() == "" and progress.count == 5


def test_without_rich_or_tqdm_it_stays_silent(monkeypatch):
    monkeypatch.setattr(_progress, "_open_bar", lambda *args: None)
    clock = Clock()
    progress = Progress(True, stream=Terminal(), clock=clock)
    clock.now = 2.0
    progress.advance(1)
    assert not progress.shown and not progress.enabled


def test_check_shows_progress_when_asked(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    original = _progress._open_bar
    monkeypatch.setattr(_progress, "_open_bar", lambda stream, total, backend: original(stream, total, "tqdm"))
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((40, 30)), "b": rng.standard_normal(40)}

    def loss(p):
        return float(np.sum(np.tanh(p["W"]).sum(1) * p["b"]))

    def grad(p):
        return {"W": (1 - np.tanh(p["W"]) ** 2) * p["b"][:, None], "b": np.tanh(p["W"]).sum(1)}

    report = gp.check(loss, grad, params, progress=True)
    err = capsys.readouterr().err
    assert report.status == "pass"
    assert "gradprobe" in err and "evaluations" in err and "random direction" in err
    quiet = gp.check(loss, grad, params, progress=False)
    assert capsys.readouterr().err == "" and quiet == report
    gp.check(lambda p: float(np.sum(np.sin(p["b"]))), lambda p: {"b": np.cos(p["b"])}, {"b": params["b"]}, progress=True)
    assert "every coordinate (while probing `b`)" in capsys.readouterr().err
