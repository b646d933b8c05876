"""Property-based tests: random compositions of differentiable primitives (tests/_compositions.py).

* The exact gradient never fails (no false alarm) and, in float64, always passes; a pass states
  a resolution below 1. In float32, not failing is not enough: over a fixed, seeded list of
  programs, at least 95% of exact gradients PASS (an inconclusive verdict counts against).
* The exact gradient plus a random error larger than the stated resolution (1.5x to 4096x) never
  gets a PASS whose own resolution is finer than the error, never blames another tensor, and,
  from twice the resolution up, always fails and blames exactly the tensor that was changed.

The same properties hold on tensors large enough to be *screened* (``estimate._screening``: in a
tensor of at least ``SCREEN_MIN`` elements, three scouts descend full ladders and every other
element is probed with two evaluations): `sized_programs` draws vectors of 6 to 40 elements, and
`sparse_mutations` plants errors, often in a few elements only, sometimes only in elements that
are not scouts, in a tensor that is screened three times in four.

Derandomized so that CI is reproducible; the example count comes from the test profile
(conftest.py): 600 per test, 3600 in all (1200 of them screened), by default and in CI, 50 per
test with ``--fast``.
benchmarks/properties.py runs the same generators over more examples and counts (``--max-size``
for the screened ones).
"""

import numpy as np
import pytest
from _compositions import UNARY, Mutation, Program, build, mutations, programs, seeded_programs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradprobe as gp
from gradprobe.estimate._screening import SCREEN_MIN, scout_positions

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
#: Elements of the input vector in the screened variant; no tensor has more than the largest.
SCREENED_SIZES = (SCREEN_MIN, 40)


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
    _assert_mutated(program, mutation, stated, made, gp.check(program.loss, grad, program.params))


@st.composite
def sized_programs(draw, dtype, min_size: int = SCREENED_SIZES[0], max_size: int = SCREENED_SIZES[1]) -> Program:
    """A random Program as `programs` draws it, on a vector of `min_size` to `max_size` elements.

    An affine map from `width` elements has 1 to ``max_size // width`` outputs (at least 1), so no
    tensor has more than `max_size` elements: a wide input then narrows, a narrow one may widen."""
    n0 = draw(st.integers(min_size, max_size), label="elements")
    plan, width = [], n0
    for _ in range(draw(st.integers(1, 4), label="steps")):
        kind = draw(st.sampled_from(("affine", "scale", "unary", "softmax")))
        if kind == "affine":
            width = draw(st.integers(1, max(1, max_size // width)))
            plan.append(("affine", width))
        elif kind == "unary":
            plan.append((draw(st.sampled_from(UNARY)),))
        else:
            plan.append((kind,))
    reduction = draw(st.sampled_from(("sum", "mean", "dot", "logsumexp")))
    seed = draw(st.integers(0, 2**32 - 1))
    return build(plan, reduction, n0, dtype, seed)


@st.composite
def sparse_mutations(draw, program: Program) -> Mutation:
    """A random error in one tensor, 1.5x to 4096x the resolution, like `mutations`, but aimed at
    screening: three times in four in a tensor of at least `SCREEN_MIN` elements (when there is
    one), half the time only in elements that are not its scouts, and half the time in 1 to 3
    elements only (else a random subset of any size)."""
    names = sorted(program.params)
    screened = [name for name in names if program.params[name].size >= SCREEN_MIN]
    if screened and draw(st.integers(0, 3)) > 0:
        name = draw(st.sampled_from(screened))
    else:
        name = draw(st.sampled_from(names))
    shape = program.params[name].shape
    size = int(np.prod(shape))
    pool = np.arange(size)
    if size >= SCREEN_MIN and draw(st.booleans()):
        pool = np.setdiff1d(pool, scout_positions(size))  # `"full"` screens the tensor whole
    if draw(st.booleans()):
        count = draw(st.integers(1, min(3, len(pool))))
    else:
        count = draw(st.integers(1, len(pool)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    direction = np.zeros(size)
    direction[rng.choice(pool, count, replace=False)] = rng.standard_normal(count)
    if not np.any(direction):
        direction[pool[0]] = 1.0
    direction /= np.linalg.norm(direction)
    factor = float(2.0 ** draw(st.floats(np.log2(1.5), 12.0)))
    return Mutation(name, direction.reshape(shape), factor)


# The two tests above keep their code as it was: hypothesis derives a derandomized test's examples
# from its source, so CI goes on checking the same 2400 programs. The screened test below asserts
# the same, through these two helpers.


def _assert_exact(program: Program, report) -> None:
    """No false alarm, and a PASS states a resolution below 1. (Not always a PASS in float64, as
    `test_exact_gradients_pass` asserts for 1 to 3 elements: a chain of softmaxes over 20-odd
    elements flattens the loss until its gradient, ~1e-12, is below what float64 resolves,
    screened or not.)"""
    assert report.status != "fail", f"false alarm on {program.describe()}\n{report}"
    if report.status == "pass":
        assert 0 <= report.resolution < 1, report


def _assert_mutated(program: Program, mutation: Mutation, stated: float, made: float, report) -> None:
    """The check of the exact gradient plus `mutation` (an error of `made`, relative, where the
    exact one was stated correct to `stated`) never blames another tensor, never gives a PASS
    whose own resolution is finer than the error, and catches it from twice `stated` up."""
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


@common
@given(data=st.data())
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_screened_tensors_keep_both_properties(dtype, data):
    # Both properties in one test, two checks per program: 600 programs per dtype (the full
    # profile) take about 11 s each on a 2-core machine.
    program = data.draw(sized_programs(dtype), label="program")
    exact = gp.check(program.loss, program.grad, program.params, strategy="full")
    _assert_exact(program, exact)
    if exact.status != "pass":
        return
    mutation = data.draw(sparse_mutations(program), label="mutation")
    stated = exact.tensors[mutation.name].resolution
    grad, made = mutation.apply(program, stated)
    _assert_mutated(program, mutation, stated, made, gp.check(program.loss, grad, program.params, strategy="full"))


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
