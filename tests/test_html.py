"""The HTML report: self-contained, and checked in a real headless browser (Chromium).

The browser tests drive Chromium over the DevTools protocol (a minimal websocket client below, so
no extra package is needed): they load the file, collect console messages, exceptions and network
requests, and read the rendered verdict. They skip when no Chromium is installed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from _two_wrong import two_wrong_elements

import gradprobe as gp
from gradprobe.report import _html as _html
from gradprobe.examples import deeplearning_ai as dla

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER = next((path for path in map(shutil.which, BROWSERS) if path), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium found (Debian: apt-get install chromium) for the browser tests"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def buggy():
    X, Y, parameters = dla.gradient_check_n_test_case()
    return gp.check(*dla.loss_and_grad(X, Y, dla.backward_propagation_n), parameters)


@pytest.fixture(scope="module")
def page(buggy, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    buggy.to_html(path)
    return path


# -- the file itself ------------------------------------------------------------------------------


def test_to_html_writes_one_self_contained_page(buggy, page):
    text = page.read_text(encoding="utf-8")
    assert text == buggy.to_html()
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    assert "gradprobe <span class=\"fail\">FAIL</span>: 2 of 6 tensors wrong (b1, W2)" in text
    assert _html.CSP in text  # the page forbids itself any fetch
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<script" not in text
    assert "W2 is exactly 2.00x the numerical gradient" in text
    assert buggy.reproduce.replace("'", "&#x27;") in text


def test_failing_tensors_get_inline_plots(buggy):
    pytest.importorskip("matplotlib")
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', buggy.to_html())
    assert [alt.split(":")[0] for alt, _ in images] == ["b1", "W2"]
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for _, data in images)


@pytest.fixture(scope="module")
def directional():
    """A directional check that localizes two wrong elements of `W` (only 2 of 1240 parameters wrong)."""
    loss, grad, params = two_wrong_elements(30, 40)
    return gp.check(loss, grad, params, strategy="directional")


def _worst_rows(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr><td><code>(\([^<]*\))</code></td>(.*?)</tr>", html)
    return [[index, *re.findall(r'<td class="num">([^<]*)</td>', cells)] for index, cells in rows]


def test_a_directional_report_shows_every_error_bar_the_text_shows_and_plots_its_elements(directional):
    tensor = directional.tensors["W"]
    assert directional.status == "fail" and tensor.analytic is None  # probed by directions, not whole
    assert {e.index for e in tensor.worst} == {(3, 5), (4, 7)}
    html = directional.to_html()
    shown = {line.split(":")[0].strip()[3:]: line.split("± ")[1] for line in str(directional).splitlines() if "±" in line}
    assert set(shown) == {"(3, 5)", "(4, 7)"}  # the text gives each element its error bar
    rows = _worst_rows(html)
    assert {index: bar for index, _, _, bar in rows} == shown  # the page too, never "-"
    for key in (tensor.diagnosis, tensor.hint, f"guarantee: {directional.guarantee}", "Taylor remainder slope 1.00"):
        assert key.replace(">", "&gt;") in html
    pytest.importorskip("matplotlib")
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html)
    assert [alt.split(":")[0] for alt, _ in images] == ["W"]
    assert "the elements probed one by one" in images[0][0] and "error bars" in images[0][0]
    assert base64.b64decode(images[0][1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_page_says_how_to_get_plots(buggy, monkeypatch):
    import gradprobe.report._plot as plot

    def missing(tensor):
        raise ImportError("no matplotlib")

    monkeypatch.setattr(plot, "tensor_png", missing)
    text = buggy.to_html()
    assert "<img" not in text and text.count("Install matplotlib") == 2


def test_names_and_messages_are_escaped():
    params = {"<b>x</b>": np.ones(2)}
    report = gp.check(lambda p: float(np.sum(p["<b>x</b>"] ** 2)), lambda p: {"<b>x</b>": 4 * p["<b>x</b>"]}, params)
    text = report._repr_html_()
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_notebook_fragment(buggy):
    fragment = buggy._repr_html_()
    assert fragment.startswith('<div class="gradprobe-report">') and fragment.endswith("</div>")
    assert "<html" not in fragment and 'data-status="fail"' in fragment


def test_path_must_be_a_path(buggy):
    with pytest.raises(gp.InvalidArgument, match="`path` must be a file path"):
        buggy.to_html(3)


# -- in a real browser -----------------------------------------------------------------------------


class _WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: masked text frames out, frames in."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head

    def _recv_some(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the browser closed the DevTools connection")
        return chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv_some()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("the browser closed the DevTools connection")
            if opcode in (0, 1, 2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """A headless Chromium page driven over the DevTools protocol, recording what goes wrong."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [BROWSER, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                pytest.fail("Chromium did not start its DevTools server")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = []
        while not targets:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/json/list")
            targets = [t for t in json.loads(connection.getresponse().read()) if t["type"] == "page"]
            connection.close()
            if not targets and time.monotonic() > deadline:
                pytest.fail("Chromium opened no page")
        self.socket = _WebSocket(targets[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.socket.recv()))
        pytest.fail(f"no {method} within {timeout} s")

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.evaluate("1")  # lets console and network events that came with the load arrive

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and browser log errors (e.g. CSP)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log: {params['entry']['text']}")
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if BROWSER is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium) for the browser tests")
    session = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield session
    session.close()


@pytest.mark.slow
@needs_browser
def test_the_page_loads_cleanly_and_shows_the_verdict(browser, page):
    browser.open(page.as_uri())
    assert browser.problems() == []
    assert all(url.startswith(("file:", "data:")) for url in browser.requests()), browser.requests()
    verdict = browser.evaluate("document.querySelector('.verdict').innerText")
    assert verdict == "gradprobe FAIL: 2 of 6 tensors wrong (b1, W2)"
    rows = browser.evaluate("[...document.querySelectorAll('table.tensors tbody tr')].map(r => r.innerText)")
    assert len(rows) == 6 and "FAIL" in rows[1] and "4.00x" in rows[1] and "2.00x" in rows[2]
    if _has_matplotlib():
        decoded = browser.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 100)")
        assert decoded == [True, True]  # both plots decoded and laid out


@pytest.mark.slow
@needs_browser
def test_the_browser_check_catches_console_errors_and_fetches(browser, tmp_path):
    """The clean-load test above can fail: errors, exceptions, fetches and CSP violations are seen."""
    noisy = tmp_path / "noisy.html"
    noisy.write_text(
        '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
        '<script>console.error("boom"); undefined_function();</script></body></html>',
        encoding="utf-8",
    )
    browser.open(noisy.as_uri())
    problems = browser.problems()
    assert any("boom" in p for p in problems) and any(p.startswith("exception:") for p in problems), problems
    assert "http://127.0.0.1:9/x.png" in browser.requests()

    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{_html.CSP}"></head>'
        '<body><img src="http://127.0.0.1:9/y.png"></body></html>',
        encoding="utf-8",
    )
    browser.open(guarded.as_uri())
    assert any("Content Security Policy" in p for p in browser.problems()), browser.problems()
    blocked = [e["params"].get("blockedReason") for e in browser.events if e.get("method") == "Network.loadingFailed"]
    assert blocked == ["csp"]  # the policy stopped the fetch before it left the browser


@pytest.mark.slow
@needs_browser
def test_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    run = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1100,1400", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = struct.unpack("!II", data[16:24])
    assert (width, height) == (1100, 1400)
    image = pytest.importorskip("PIL.Image")
    with image.open(shot) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert (pixels < 250).any(axis=2).mean() > 0.02  # not a blank page: text, tables and plots
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 50  # the red FAIL verdict is drawn


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
