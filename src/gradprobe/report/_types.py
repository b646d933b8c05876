"""Frozen result objects. Rendering lives in the renderers (`_text`, `_terminal`, `_schema`, `_html`,
`_plot`), which the methods here call; nothing here computes but `Guarantee.miss_probability`,
which reads its stated bound off the stored numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Element:
    """One gradient element: its index in the tensor, the analytic and the numerical value, and
    the error bar of their comparison.

    It unpacks as the three values, ``index, analytic, numeric = element`` (as when it was a
    named tuple); the error bar is read by name.

    Attributes
    ----------
    index : the element's index in its tensor (``()`` for a scalar).
    analytic, numeric : the user's gradient and the numerical derivative at that element (complex
        numbers for a complex tensor, in the framework's convention; docs/report.md, "Complex tensors").
    error_bar : the bound on ``|analytic - numeric|`` the element was judged against (the
        numerical value's error bar plus the floor for the analytic value's rounding), the
        ``± ...`` of the text report; None when unknown (an element built without one).

    Examples
    --------
    >>> element = Element((1, 2), 2.0, 1.0, error_bar=1e-9)
    >>> index, analytic, numeric = element
    >>> index, analytic / numeric, element.error_bar
    ((1, 2), 2.0, 1e-09)
    """

    index: tuple[int, ...]
    analytic: float
    numeric: float
    error_bar: float | None = None

    # The three values as a sequence: unpacking, `element[1]` and `len(element)` keep working for
    # code written when `Element` was a named tuple of them.
    def __iter__(self) -> Iterator[Any]:
        return iter((self.index, self.analytic, self.numeric))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, position: int | slice) -> Any:
        return (self.index, self.analytic, self.numeric)[position]


@dataclass(frozen=True)
class Coverage:
    """What a check covered, and what a `budget` left out.

    Attributes
    ----------
    complete : True when every tensor got all the work its strategy plans.
    budget : the budget in words ("2000 evaluations", "30 s"), or None when there was none.
    not_covered : one line per gap the budget left ("b3: not checked", "W1: 120 of 960
        elements checked", "W2: wrong elements not named, they lie in (12, 0) .. (15, 99)").
    evaluations : loss evaluations per phase, in order: "setup" (the starting point and the
        noise estimate), then "coordinates", or "verdict" (random directions, until pass or fail
        is known) and "localization" (which tensors, then which elements, are wrong, and the
        Taylor-slope diagnosis).
    """

    complete: bool = True
    budget: str | None = None
    not_covered: tuple[str, ...] = ()
    evaluations: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Guarantee:
    """The detection guarantee of a randomized strategy ("directional" or "sample").

    Attributes
    ----------
    kind : "directional": `resolution` is a relative error size ``||e|| / ||g||`` of a tensor's
        gradient; "sample": it is the fraction of a tensor's elements that are wrong.
    confidence : each tensor's error of at least `resolution` is caught with at least this
        probability.
    resolution : the largest over the tensors it makes a claim for (inf when it makes none).
    probes : random directions (or sampled elements) per tensor.
    thresholds : "directional" only: per tensor, per direction, the relative error size ``r`` for
        which that direction's miss-probability bound ``min(1, r / delta)`` reaches 1.
    undecided : the tensors the check left inconclusive: no detection claim is made for them
        (their miss probability is 1 at every size).
    exact : "directional" only: tensors that random directions left undecided and that were then
        decided element by element, with their resolution: an error of at least that size is
        caught with certainty, a smaller one is not claimed.
    rounding : "directional" only: tensors whose gradient was computed below float64 and judged
        against the float64 reference, with the relative error size their rounding allowance can
        hide (an error of the low-precision arithmetic alone, below it, reads as rounding): no
        claim is made below it.
    """

    kind: str
    confidence: float
    resolution: float
    probes: dict[str, int] = field(default_factory=dict)
    thresholds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    undecided: tuple[str, ...] = ()
    exact: dict[str, float] = field(default_factory=dict)
    rounding: dict[str, float] = field(default_factory=dict)

    def miss_probability(self, size: float, tensor: str | None = None) -> float:
        """Upper bound on the probability that an error of relative size `size` (a fraction of
        wrong elements for "sample") in `tensor` (by default: the worst tensor) went unnoticed."""
        # The bounds derived in `gradprobe.judge._guarantee`, read off the stored thresholds and
        # counts: each direction misses with probability <= min(1, r / size), each sampled
        # element with probability <= 1 - size.
        worst = 0.0
        for name in [tensor] if tensor is not None else self.probes:
            if name in self.undecided:
                return 1.0  # no claim for a tensor the check could not decide
            if size < self.rounding.get(name, 0.0):
                return 1.0  # within the rounding allowance: an error in low precision only can hide
            if name in self.exact:
                worst = max(worst, 0.0 if size >= self.exact[name] else 1.0)
                continue
            if self.kind == "sample":
                miss = (1.0 - min(1.0, size)) ** self.probes[name]
            else:
                miss = math.prod(min(1.0, r / size) for r in self.thresholds.get(name, ())) if size > 0 else 1.0
            worst = max(worst, float(miss))
        return worst

    def __str__(self) -> str:
        from ._text import describe_guarantee

        return describe_guarantee(self)


@dataclass(frozen=True)
class Finding:
    """What a diagnosis found, as facts: the report's `diagnosis` and `hint` sentences are rendered
    from these fields alone (`_sentences`), so code can read what people read.

    Attributes
    ----------
    kind : how the tensor is wrong, or why it is undecided: one of the `kind` column of
        docs/report.md's table of diagnoses ("factor", "sign", "transposed", "elements"...).
    count, judged : how many elements the finding is about (wrong, too noisy, at kinks, with the loss
        NaN/inf nearby) out of how many judged (the tensor's, or the elements sampled or probed one by
        one, see `scope`); None when it is about the tensor as a whole.
    where : where those elements lie, as said: "elements 3, 7", "all in row 2", "all in [:, 0:4, :]";
        "" when they are too many or too scattered to say.
    indices : the indices of those elements in the tensor, when there are at most `NAMED_INDICES`
        (else empty).
    factor : analytic / numerical: constant across the tensor ("factor", "sign"; 0.0 for "zeros"),
        or shared by the wrong elements ("elements"), or the one wrong element's; else None.
    batch_size : the m of "1/m" (the check's ``batch_size``).
    axes : ("permuted", "transposed") the order with ``analytic == numeric.transpose(axes)``;
        ("reversed") the two axes reversed at once, when it is not one `axis`.
    axis, shift : ("reversed", "shifted") the axis, and the shift along it (``np.roll``'s sense).
    other : ("swapped") the tensor whose numerical gradient this one's gradient is.
    dtype : the low precision the finding holds in only (the same backward in float64 agrees).
    against : what the numerical side was, when it was the user's own code: "jvp" (the
        ``oracle="forward"`` derivatives came from the user's jvp rules), so a disagreement is the
        backward's fault or the jvp's; None for numerical derivatives.
    suspects : ("probed" with `dtype`) how many elements differ from the same backward run in
        float64 by more than rounding; the `judged` that differ most were probed one by one.
    scope : how far it was shown: "tensor" (every element judged), "throughout" (read off the
        elements probed and confirmed over the whole tensor along two fresh random directions, or an
        all-zero gradient), "sampled" (read off sampled elements only), "located" (the wrong elements
        bisection named one by one), "region" (the slices that hold the wrong elements bisection and
        sampling found), "probed" (the elements most off their float64 run, probed one by one),
        "budget" (the budget ran out before it was localized).
    spread : ("nondeterministic") how much identical calls of the loss differ.
    resolution : ("noise" with no noisy element) the tensor's resolution.
    """

    kind: str
    count: int | None = None
    judged: int | None = None
    where: str = ""
    indices: tuple[tuple[int, ...], ...] = ()
    factor: float | None = None
    batch_size: int | None = None
    axes: tuple[int, ...] | None = None
    axis: int | None = None
    shift: int | None = None
    other: str | None = None
    dtype: str | None = None
    against: str | None = None
    suspects: int | None = None
    scope: str = "tensor"
    spread: float | None = None
    resolution: float | None = None

    @property
    def summary(self) -> str:
        """The short text for the table ("2.00x", "3 of 20 wrong (elements 1, 4, 7)")."""
        from ._sentences import summary

        return summary(self)

    def hint(self, name: str) -> str:
        """The line that says where to look, for the tensor called `name`."""
        from ._sentences import hint

        return hint(self, name)

    @property
    def scale(self) -> float | None:
        """The constant analytic / numerical ratio over the tensor, when that is the finding."""
        return self.factor if self.kind in ("factor", "sign", "zeros") else None


#: Indices a `Finding` lists at most.
NAMED_INDICES = 20


@dataclass(frozen=True)
class TensorReport:
    """The verdict on one parameter tensor.

    Attributes
    ----------
    name, shape : the tensor's name in the user's structure ("W1", "layers.0.weight") and shape.
    status : "pass", "fail" or "inconclusive".
    difference : ``||a - n|| / (||a|| + ||n||)`` over this tensor (the seed's measure).
    resolution : smallest relative error (in norm) of this tensor's gradient the check would catch.
    finding : what the diagnosis found, as facts (`Finding`), or None (a passing tensor). The
        properties below are rendered from it:
    scale : analytic / numeric when that ratio is a constant across the tensor (failing tensors).
    diagnosis : short description of how it is wrong ("2.00x", "sign flipped"...), or None.
    hint : one line saying where to look, or None.
    diagnosis_kind : what the diagnosis found, for code: "factor", "sign", "transposed",
        "permuted", "reversed", "shifted", "swapped", "zeros", "should_be_zero", "rounded", "conjugated",
        "elements", "formula", "not_localized", or for an undecided tensor "noise", "kinks",
        "loss_nonfinite", "no_derivative", "nondeterministic", "reference"; None without a diagnosis.
    worst : the elements with the largest disagreement, worst first.
    reason : why the tensor is inconclusive ("kink", "noise", "nonfinite", "budget", or "reference":
        it disagreed in its low precision only, and the float64 reference differs from the loss in
        its own precision),
        else None.
    kinks : indices of elements at non-differentiable points (not counted as failures).
    counts : how many elements had each outcome ("pass", "fail", "kink", "noise", "nonfinite").
    taylor_slope : for failing tensors, the slope of log |remainder| against log step along the
        error's direction: about 2 for a right gradient, 1 for a wrong one.
    probes : random directions ("directional") or sampled elements ("sample") used for the verdict;
        0 when every element was probed.
    coverage : fraction of the elements the check covered (1.0 unless a budget stopped it early,
        or for "sample" the fraction sampled); a direction covers every element it moves.
    analytic, numeric, error_bar : arrays of the tensor's shape: the user's gradient, the numerical
        one and the bound on their disagreement, when every element was probed (else None). They
        feed the plots; `Report.to_dict` leaves them out unless asked.
    """

    name: str
    shape: tuple[int, ...]
    status: Status
    difference: float
    resolution: float
    finding: Finding | None = None
    worst: tuple[Element, ...] = ()
    reason: str | None = None
    kinks: tuple[tuple[int, ...], ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    taylor_slope: float | None = None
    probes: int = 0
    coverage: float = 1.0
    analytic: Any = field(default=None, repr=False, compare=False)
    numeric: Any = field(default=None, repr=False, compare=False)
    error_bar: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    @property
    def diagnosis(self) -> str | None:
        return self.finding.summary if self.finding is not None else None

    @property
    def hint(self) -> str | None:
        return self.finding.hint(self.name) if self.finding is not None else None

    @property
    def diagnosis_kind(self) -> str | None:
        return self.finding.kind if self.finding is not None else None

    @property
    def scale(self) -> float | None:
        return self.finding.scale if self.finding is not None else None


@dataclass(frozen=True)
class Report:
    """The result of a gradient check.

    Attributes
    ----------
    status : "pass", "fail" or "inconclusive" (fail if any tensor fails).
    difference : the seed's global relative difference ``||a - n|| / (||a|| + ||n||)``.
    resolution : smallest relative gradient error (in norm, over all parameters) the check would
        have caught; a pass means "no error larger than this".
    nfev : loss evaluations spent.
    tensors : mapping name -> `TensorReport`, in the order of the parameters.
    ignored : gradient entries that match no parameter (e.g. the seed's ``dZ3``), ignored.
    notes : things the user should know (non-determinism, unreliable noise estimate...).
    method, strategy, seed : what was run, so the check can be reproduced.
    noise : standard deviation of the loss's noise, as measured.
    reference : what the numerical side differentiated: "native" (the loss in the parameters' own
        dtypes), "float64" (the loss evaluated in float64 for lower-precision parameters; the
        gradient under test is still the one computed at their own precision) or "forward" (an
        exact forward-mode oracle).
    options : the other options the check ran with where they differ from `check`'s defaults
        (``rtol``, ``batch_size``...), to reproduce it.
    coverage : what was covered and what a `budget` left out (`Coverage`).
    guarantee : for the randomized strategies, the probability of missing an error of a given
        size (`Guarantee`); None for "full", whose error bars are not probabilistic.
    nearby : when kinks at the point left a tensor undecided, the same check at a nearby point
        (every parameter moved by up to 1e-4 of its scale), where the function is differentiable:
        evidence about the gradient code, not a verdict at the user's point, whose statuses stand.
        `nfev` counts both checks. None otherwise.
    points : with ``points=k`` (k > 1), each point's own report: yours first, then the k - 1
        nearby random ones (see `gradprobe.check`). The report itself is then their union: the worst
        status (fail > inconclusive > pass), the summed `nfev`, the largest `difference` and
        `resolution`, per tensor the report of the point where it did worst (the first such), and
        a `coverage` over all points; `guarantee`, `nearby` and the other fields are your point's.
        Empty with ``points=1``.
    order : which derivative the tensors' verdicts are about: 1, the gradient; 2, the derivative of
        the gradient (double backward). With ``order=k`` the adapters check orders 1 to k and show
        the lowest that fails (else the lowest inconclusive one, else k); a note says how the
        others went.
    mode : where the gradient under test came from: "reverse" (the backward, a VJP) or
        "forward" (forward-mode AD, assembled from JVPs along unit vectors); with
        ``mode="both"``, the one that fails (a note says how the other went), or "both" when
        both passed.
    """

    status: Status
    difference: float
    resolution: float
    nfev: int
    tensors: dict[str, TensorReport]
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    method: str = "richardson"
    strategy: str = "full"
    seed: int = 0
    noise: float = 0.0
    reference: str = "native"
    options: dict[str, Any] = field(default_factory=dict)
    coverage: Coverage = field(default_factory=Coverage)
    guarantee: Guarantee | None = None
    nearby: Report | None = None
    points: tuple[Report, ...] = ()
    order: int = 1
    mode: str = "reverse"

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    @property
    def failing(self) -> tuple[str, ...]:
        """Names of the tensors that fail."""
        return tuple(name for name, tensor in self.tensors.items() if tensor.status == "fail")

    def __str__(self) -> str:
        from ._text import render_text

        return render_text(self)

    @property
    def reproduce(self) -> str:
        """A line of Python that repeats this check: the seed, strategy, method and other options."""
        from ._text import reproduce_line

        return reproduce_line(self)

    def to_dict(self, *, values: bool = False) -> dict[str, Any]:
        """A JSON-ready dict following ``report.schema.json`` (version `_schema.SCHEMA_VERSION`).

        Non-finite numbers become the strings ``"nan"``, ``"inf"`` and ``"-inf"``. With
        ``values=True`` each tensor also carries its flat (row-major) ``analytic``, ``numeric``
        and ``error_bar`` values.
        """
        from ._schema import report_to_dict

        return report_to_dict(self, values=values)

    def to_json(self, *, values: bool = False, **kwargs: Any) -> str:
        """`to_dict` as a JSON string (strict JSON: no NaN); `kwargs` go to `json.dumps`."""
        return json.dumps(self.to_dict(values=values), allow_nan=False, **kwargs)

    @staticmethod
    def json_schema() -> dict[str, Any]:
        """The JSON Schema of `to_dict`'s output (shipped as ``gradprobe/report.schema.json``)."""
        from ._schema import load_schema

        return load_schema()

    def to_dataframe(self) -> Any:
        """One row per tensor as a `pandas.DataFrame` indexed by name (needs pandas)."""
        from ._schema import report_to_dataframe

        return report_to_dataframe(self)

    def to_html(self, path: Any = None) -> str:
        """A self-contained HTML page (tables, and plots of failing tensors when matplotlib is
        installed); written to `path` when given. Returns the HTML."""
        from ._html import write_html

        return write_html(self, path)

    def plot(self, tensors: Any = None) -> Any:
        """A matplotlib `Figure`: per tensor (the failing ones by default) a heatmap of analytic
        minus numerical values and a scatter of analytic against numerical values."""
        from ._plot import plot_report

        return plot_report(self, tensors)

    def show(self, file: Any = None) -> None:
        """Print the report; with rich installed, as coloured tables when `file` is a terminal."""
        from ._terminal import show

        show(self, file)

    def _repr_html_(self) -> str:
        from ._html import render_fragment

        return render_fragment(self)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from ._terminal import renderables

        yield from renderables(self)
