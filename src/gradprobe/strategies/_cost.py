"""The cost model: how many loss evaluations each part of a check takes, from the constants that
decide it. "auto", the budget's minimum and the progress bar all read it here.

A check always starts with the loss at the point (1 evaluation; 2 when a float16 loss is first
tried in float64 and fails), the noise measurement (`NoisePlan.evaluations` when each difference
table is right the first time, up to three tries per table otherwise) and, for method="complex",
a test that the loss is complex-analytic, and two calls that tell a loss raising at a noise table's
point from one that fails at random (see `estimate._calling.OutsideDomain`). Then a few scouts
per tensor ("full") descend their step ladders (two evaluations per level, at least
`window_levels` levels, at most `MAX_LEVELS` plus the levels of `FLAT_RETRIES` restarts with
larger steps), and every other element is screened with two evaluations (`estimate._screening`),
after which the few not clearly right descend their ladders too.
"""

from __future__ import annotations

from .._errors import InvalidValue
from ..estimate import _differences as fd
from ..estimate._coordinate_probes import FLAT_RETRIES, CoordinateEstimator
from ..estimate._calling import CONFIRMATION_EVALUATIONS
from ..estimate._noise_model import DIRECTIONAL_NOISE, FULL_NOISE, NoisePlan
from ..estimate._screening import SCOUTS, SCREEN_MIN
from ..params._params import Params
from ._options import Options
from ._shadow import needs_shadow

#: "auto" probes every coordinate up to this many parameters (the seed's network has 47).
AUTO_FULL_LIMIT = 1000
#: Tries of one difference table before the noise estimate gives up on it (see `_noise._one_table`).
TABLE_TRIES = 3
#: Levels a ladder typically takes beyond its first window (a scout's, measured over the bug suite
#: and smooth losses): for the progress bar.
TYPICAL_EXTRA_LEVELS = 1.0


def noise_plan(strategy: str) -> NoisePlan:
    """The directional strategy measures the noise more cheaply (see `DIRECTIONAL_NOISE`)."""
    return DIRECTIONAL_NOISE if strategy == "directional" else FULL_NOISE


def setup_cost(options: Options, strategy: str, params: Params, *, worst: bool) -> int:
    """Evaluations before any probe: the point, the noise (at its `worst`, every table tried
    `TABLE_TRIES` times), the complex-step test."""
    plan = noise_plan(strategy)
    tables = plan.table_count(params.size) * (plan.points - 1)
    cost = 1 + plan.repeats + tables * (TABLE_TRIES if worst else 1)
    if worst and options.shadow is None and needs_shadow(params):
        cost += 1  # the float64 try that failed
    if options.method == "complex":
        cost += CoordinateEstimator.COMPLEX_SUPPORT_EVALUATIONS
    if worst:
        cost += CONFIRMATION_EVALUATIONS  # the loss raised at a noise table's point: is it a domain edge?
    return cost


def per_element_cost(method: str, *, worst: bool) -> float:
    """Evaluations one coordinate's probe takes: at most (its screening pair, then its whole
    ladder), or typically on a ladder of its own (a scout, or an element probed alone)."""
    if method == "complex":
        return 1
    first = fd.window_levels(method)  # type: ignore[arg-type]
    levels = 1 + first * FLAT_RETRIES + fd.MAX_LEVELS if worst else first + TYPICAL_EXTRA_LEVELS
    return 2 * levels


def full_cost(options: Options, params: Params, *, worst: bool) -> int:
    """A check of every coordinate, at most (`worst`) or typically (scouts on ladders, the rest of
    each large enough tensor screened with two evaluations)."""
    setup = setup_cost(options, "full", params, worst=worst)
    per_element = per_element_cost(options.method, worst=worst)
    if worst or options.method == "complex":
        return int(setup + per_element * params.size)
    laddered = sum(leaf.size if leaf.size < SCREEN_MIN else SCOUTS for leaf in params.leaves)
    return int(setup + per_element * laddered + 2 * (params.size - laddered))


def choose_strategy(options: Options, params: Params) -> str:
    """What "auto" means for these parameters under `options.budget`: every coordinate when there
    are few and the budget affords them at worst (so that the budget cannot cut the check short
    and the report is the unbudgeted one), else random directions, whose verdict a budget can stop."""
    if options.strategy != "auto":
        return options.strategy
    budget = options.budget
    if params.size > AUTO_FULL_LIMIT or budget.seconds is not None:
        return "directional" if params.size > AUTO_FULL_LIMIT else "full"
    if budget.evaluations is None or budget.evaluations >= full_cost(options, params, worst=True):
        return "full"
    return "directional"


#: Up to this many parameters, a batch of points (a copy of them each) costs less to build than
#: the calls it saves, whatever the strategy (a directional check of a GELU MLP of 1,864 float32
#: parameters: 39 ms batched, 73 ms one point per call); above it, building the batch costs more
#: (gp.torch.check of an MLP of 100,056: 52 ms one point per call, 76 ms batched), and batches pay
#: only where a check probes elements, with many points per call (benchmarks/RESULTS.md, "Scale").
BATCH_POINTS_LIMIT = 2**14


def batches_pay(strategy: object, size: int) -> bool:
    """Whether evaluating a check's points in batches (vmap) pays: for `size` parameters up to
    `BATCH_POINTS_LIMIT`, or when the check probes elements one by one ("full", "sample"). A
    directional check of more evaluates a few points at a time, each moving every parameter."""
    return size <= BATCH_POINTS_LIMIT or strategy in ("full", "sample")


def runs_unbounded(options: Options, strategy: str, params: Params) -> bool:
    """Whether every coordinate is probed at once, as without a budget: the strategy is "full" and
    the budget (if any) affords its worst case, so it cannot change the report."""
    if strategy != "full":
        return False
    budget = options.budget
    if budget.seconds is not None:
        return False
    return budget.evaluations is None or budget.evaluations >= full_cost(options, params, worst=True)


def require_affordable(options: Options, params: Params) -> None:
    """A budget below the set-up's worst case could be overrun before any probe: refuse it."""
    budget = options.budget.evaluations
    if budget is None:
        return
    strategies = ("full", "directional") if options.strategy == "auto" else (options.strategy,)
    minimum = min(setup_cost(options, s, params, worst=True) for s in strategies)
    share = options.budget.share(options.points).evaluations  # what each of `points` gets
    if share < minimum:
        what = f"strategy={options.strategy!r}" if options.strategy != "auto" else "any strategy"
        per = f" ({share} for each of the {options.points} points)" if options.points > 1 else ""
        raise InvalidValue(
            f"`budget` of {budget} evaluations{per} is too small for {what} on {params.size} parameter"
            f"{'s' if params.size != 1 else ''}: the starting point and the noise estimate alone can take up to "
            f"{minimum}{' per point' if per else ''}; give at least {minimum * options.points + options.points - 1}.",
            argument="budget",
        )


def expected_evaluations(options: Options, strategy: str, params: Params) -> int | None:
    """Roughly how many evaluations the check will take, for the progress bar (None: unknown)."""
    typical = full_cost(options, params, worst=False) if strategy == "full" else None
    budget = options.budget.evaluations
    if budget is not None:
        return budget if typical is None else min(budget, typical)
    return typical  # random directions and localization: depends on what they find
