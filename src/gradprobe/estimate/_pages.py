"""No transparent huge pages for numpy's arrays while a check runs.

On Linux numpy advises the kernel to back every array of 4 MiB or more with huge pages
(``madvise(MADV_HUGEPAGE)``). A check of a large model makes and drops such arrays all the time
(a model's worth of parameters per loss call); when no huge page is free the kernel first
compacts memory, and a check that takes 75 ms takes 170 ms now and then. During a check numpy's
advice is off, as with ``NUMPY_MADVISE_HUGEPAGE=0``, and afterwards it is back as it was, also
when the check raises. Where numpy has no such switch, nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # checks running (nested, or in several threads): the first one in saves the advice
_saved = False


def _switch() -> Callable[[bool], bool] | None:
    """numpy's setter (it returns the previous setting), or None."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, "_set_madvise_hugepage", None)


@contextmanager
def without_huge_pages() -> Iterator[None]:
    """Turn numpy's huge-page advice off for the duration of the block."""
    global _depth, _saved
    switch = _switch()
    if switch is None:  # pragma: no cover - a numpy without the switch
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = bool(switch(False))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                switch(_saved)
