"""Property-based tests: random compositions of differentiable primitives (tests/_compositions.py).

* The exact gradient never fails (no false alarm) and, in float64, always passes; a pass states
  a resolution below 1. In float32, not failing is not enough: over a fixed, seeded list of
  programs, at least 95% of exact gradients PASS (an inconclusive verdict counts against).
* The exact gradient plus a random error larger than the stated resolution (1.5x to 4096x) never
  gets a PASS whose own resolution is finer than the error, never blames another tensor, and,
  from twice the resolution up, always fails and blames exactly the tensor that was changed.

Derandomized so that CI is reproducible; the example count comes from the test profile
(conftest.py): 600 per test, 2400 in all, by default and in CI, 50 per test with ``--fast``.
benchmarks/properties.py runs the same generators over more examples and counts.
"""

import numpy as np
import pytest
from _compositions import mutations, programs, seeded_programs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradprobe as gp

MARGIN = 2.0
#: Share of exact float32 gradients that must PASS. An inconclusive verdict on a correct
#: gradient is honest but useless to the user; 1 in 20 is the most we accept. Measured on the
#: code of 9f56121 and 151ec5b: float32 98.5-99.5% (200 and 1000 programs, seeds 0-2; the rest
#: inconclusive, mostly softmax or sigmoid chains that flatten the loss), float64 100%.
PASS_SHARE = 0.95
#: Programs in the seeded list: the same list in every profile, so that `--fast` and CI assert
#: the same share; 200 allow 10 inconclusive verdicts, against the 2 seen on this list today.
SHARE_PROGRAMS = 200

# no max_examples: the profile sets it (conftest.py)
common = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = [np.float64, np.float32]


@common
@given(data=st.data())
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_exact_gradients_pass(dtype, data):
    program = data.draw(programs(dtype), label="program")
    report = gp.check(program.loss, program.grad, program.params)
    assert report.status != "fail", f"false alarm on {program.describe()}\n{report}"
    if dtype == np.float64:
        assert report.status == "pass", f"{program.describe()}\n{report}"
    if report.status == "pass":
        assert 0 <= report.resolution < 1, report


@common
@given(data=st.data())
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_errors_above_the_resolution_fail_and_are_blamed(dtype, data):
    program = data.draw(programs(dtype), label="program")
    exact = gp.check(program.loss, program.grad, program.params)
    if exact.status != "pass":
        return  # nothing was stated (float32 only: float64 always passes, see above)
    mutation = data.draw(mutations(program), label="mutation")
    stated = exact.tensors[mutation.name].resolution
    grad, made = mutation.apply(program, stated)
    report = gp.check(program.loss, grad, program.params)
    failing = {name for name, t in report.tensors.items() if t.status == "fail"}
    described = f"{program.describe()}: error of {made:.3g} (resolution {stated:.3g}) in {mutation.name}\n{report}"
    assert made > stated  # the error really is above the stated resolution
    assert failing <= {mutation.name}, described  # never blames a tensor that is right
    # A PASS never admits an error above the resolution it states itself.
    if report.status == "pass":
        assert made <= report.tensors[mutation.name].resolution, described
    # An error twice the resolution stated for the exact gradient is always caught. (Between 1x
    # and 2x, a check of the wrong gradient may state a coarser resolution than the check of
    # the right one did: benchmarks/properties.py counts how often that lets an error through.)
    if made >= MARGIN * stated:
        assert failing == {mutation.name} and report.status == "fail", described


def test_exact_float32_gradients_pass_in_at_least_95_percent():
    # float64 needs no share: test_exact_gradients_pass asserts that every exact gradient passes
    programs_checked = seeded_programs(SHARE_PROGRAMS, seed=0, dtype=np.float32)
    undecided = {}
    for k, program in enumerate(programs_checked):
        report = gp.check(program.loss, program.grad, program.params)
        assert report.status != "fail", f"false alarm on program {k}, {program.describe()}\n{report}"
        if report.status != "pass":
            undecided[k] = f"{program.describe()}: {str(report).splitlines()[0]}"
    share = 1 - len(undecided) / len(programs_checked)
    drawn = f"seeded_programs({SHARE_PROGRAMS}, seed=0, dtype=np.float32)"
    listed = "\n".join(f"  {drawn}[{k}]: {line}" for k, line in undecided.items())
    assert share >= PASS_SHARE, f"{share:.1%} of exact gradients pass, below {PASS_SHARE:.0%}:\n{listed}"
