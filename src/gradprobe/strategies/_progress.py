"""A progress bar for checks that take more than about a second.

Shows the loss evaluations done (out of the total when it is known) and what is being probed.
It uses rich when installed, else tqdm, else stays silent; ``progress=False`` turns it off, and by
default it is off when the stream is not a terminal (logs, CI, pytest's captured output).
Nothing is drawn before `DELAY` seconds, so quick checks never flash a bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

DELAY = 1.0
#: Redraw at most this often: a fast loss can be called thousands of times a second.
REFRESH = 0.1


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


class _RichBar:
    def __init__(self, stream: TextIO, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("gradprobe"), BarColumn()]
        columns.append(MofNCompleteColumn() if total else TextColumn("{task.completed}"))
        columns += [TextColumn("evaluations"), TextColumn("{task.description}"), TimeElapsedColumn()]
        self.bar = Progress(*columns, console=Console(file=stream), transient=True)
        self.task = self.bar.add_task("", total=total)
        self.bar.start()

    def update(self, count: int, text: str) -> None:
        self.bar.update(self.task, completed=count, description=text)

    def close(self) -> None:
        self.bar.stop()


class _TqdmBar:
    def __init__(self, stream: TextIO, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, file=stream, desc="gradprobe", unit=" evaluations", leave=False, mininterval=REFRESH)

    def update(self, count: int, text: str) -> None:
        self.bar.n = count
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _open_bar(stream: TextIO, total: int | None, backend: str | None) -> Any:
    for name, bar in (("rich", _RichBar), ("tqdm", _TqdmBar)):
        if backend not in (None, name):
            continue
        try:
            return bar(stream, total)
        except ImportError:
            continue
    return None


class Progress:
    """Counts evaluations and shows them once the check has run for `delay` seconds.

    Parameters
    ----------
    setting : None (on when `stream` is a terminal), True (on) or False (off).
    total : evaluations expected, when known.
    stream : where to draw (standard error by default).
    backend : "rich" or "tqdm" to insist on one; by default the first installed.
    clock, delay : for tests (`delay` defaults to `DELAY`).

    Examples
    --------
    >>> import io
    >>> progress = Progress(None, stream=io.StringIO())   # not a terminal: stays off
    >>> progress.advance(5); progress.close(); progress.count, progress.shown
    (5, False)
    """

    def __init__(
        self,
        setting: bool | None,
        *,
        total: int | None = None,
        stream: TextIO | None = None,
        backend: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        delay: float | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = setting is True or (setting is None and _is_terminal(self.stream))
        self.total, self.backend, self.clock = total, backend, clock
        self.delay = DELAY if delay is None else delay
        self.started = clock()
        self.count = 0
        self.text = ""
        self.where = ""
        self._bar: Any = None
        self._drawn = -1.0

    @property
    def line(self) -> str:
        return f"{self.text} ({self.where})" if self.where and self.where not in self.text else self.text

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def advance(self, evaluations: int = 1, where: str = "") -> None:
        """Count `evaluations` more; `where` says what they probed ("while probing `W1`")."""
        self.count += evaluations
        self.where = where
        self._draw(force=False)

    def describe(self, text: str) -> None:
        """Say what is being probed now (a tensor's name, a phase)."""
        self.text = text
        self._draw(force=True)

    def _draw(self, force: bool) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if self._bar is None:
            if now - self.started < self.delay:
                return
            self._bar = _open_bar(self.stream, self.total, self.backend)
            if self._bar is None:  # neither rich nor tqdm: stay silent
                self.enabled = False
                return
            force = True
        if force or now - self._drawn >= REFRESH:
            self._drawn = now
            self._bar.update(self.count, self.line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self.count, self.line)
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
