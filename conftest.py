"""Test profiles, and doctest collection of the optional framework adapters only where installed.

Two profiles:

* ``full``, the default (``python -m pytest``, what CI runs): every test, and every property test
  (tests/test_properties.py) with ``FULL_EXAMPLES`` hypothesis examples.
* ``dev`` (``python -m pytest --fast``): ``DEV_EXAMPLES`` examples per property test, and the
  tests marked ``slow`` (they start other processes: the command line, a process pool, a pytest
  run, a browser, a dask cluster; or compile a JAX program, or run a grid of checks) deselected,
  for a run under 40 s on a 2-core machine.

A property test takes its example count from the profile, so it sets no ``max_examples`` itself.
``--hypothesis-profile=dev`` (hypothesis's own option) gives the small counts and keeps the slow
tests.
"""

import importlib.util

from hypothesis import settings

collect_ignore = [
    path
    for framework in ("torch", "jax")
    if importlib.util.find_spec(framework) is None
    for path in (f"src/gradprobe/adapters/{framework}.py", f"src/gradprobe/{framework}.py")
]

#: Examples per property test in the full profile: 6 tests, 3600 programs checked in all (1200 of
#: them on tensors of 6 to 40 elements, screened), where benchmarks/properties.py (3000 per dtype,
#: with and without `--max-size 40`) has seen no false alarm and no wrong blame.
FULL_EXAMPLES = 600
#: Examples per property test with ``--fast``: enough to catch a broken check in seconds, not to
#: bound how rare a false alarm is (that is what the full profile is for).
DEV_EXAMPLES = 50

settings.register_profile("full", max_examples=FULL_EXAMPLES)
settings.register_profile("dev", max_examples=DEV_EXAMPLES)
settings.load_profile("full")


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help=f"development profile: {DEV_EXAMPLES} examples per property test (instead of {FULL_EXAMPLES}) "
        "and the tests marked `slow` deselected. CI runs the full profile (no option).",
    )


def pytest_configure(config):
    # --hypothesis-profile, when given, is loaded by hypothesis's plugin and has the last word
    if config.getoption("fast") and not config.getoption("hypothesis_profile", None):
        settings.load_profile("dev")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("fast"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
