"""docs/report.md's table of diagnoses is what the code produces: every example in its first
column comes out of `diagnose` (or `only_at_low_precision`) for a case made for it here, and
every case here is in the table."""

import re
from dataclasses import fields
from pathlib import Path

import numpy as np

from gradprobe.judge._diagnosis import KINDS, Diagnosis, diagnose, only_at_low_precision
from gradprobe.judge._hypotheses import Evidence
from gradprobe.judge._verdict import FAIL, KINK, NOISE, NONFINITE, PASS
from gradprobe.report._schema import load_schema
from gradprobe.report._types import Finding

DOC = Path(__file__).resolve().parents[1] / "docs" / "report.md"
RNG = np.random.default_rng(0)
N20 = RNG.standard_normal(20) + np.sign(RNG.standard_normal(20))  # clear of zero
BAR = 1e-9


def judged(analytic, numeric, shape=None, **options) -> Diagnosis:
    analytic, numeric = np.asarray(analytic, dtype=float).ravel(), np.asarray(numeric, dtype=float).ravel()
    shape = shape or numeric.shape
    codes = np.where(np.abs(analytic - numeric) > 4 * BAR, FAIL, PASS).astype(np.int8)
    bars = np.full(numeric.size, BAR)
    evidence = Evidence(shape, analytic, np.arange(numeric.size), options.pop("others", {}))
    return diagnose("w", shape, analytic, numeric, bars, bars, codes, options.pop("batch_size", None),
                    evidence=evidence, **options)  # fmt: skip


def undecided(codes, **options) -> Diagnosis:
    codes = np.asarray(codes, dtype=np.int8)
    ones = np.ones(codes.size)
    return diagnose("w", codes.shape, ones, ones, ones * BAR, ones * BAR, codes, **options)


def in_one_row() -> Diagnosis:
    numeric = RNG.standard_normal((6, 8)) + 2
    analytic = numeric.copy()
    analytic[2, :6] *= 2
    return judged(analytic, numeric, (6, 8))


def scattered() -> Diagnosis:
    analytic = N20.copy()
    analytic[:17] += RNG.standard_normal(17)
    return judged(analytic, N20, (4, 5))


def conjugated() -> Diagnosis:
    """A complex tensor of 10 elements, held as its (real, imaginary) parts, whose gradient is conjugated."""
    parts = N20.reshape(10, 2)
    return judged(parts * [1, -1], parts, (10, 2), pairs=True)


M = N20[:16].reshape(4, 4)
K = RNG.standard_normal((3, 3, 4))

CASES = {
    "all zeros": lambda: judged(np.zeros(20), N20),
    "should be zero": lambda: judged(N20, np.zeros(20)),
    "rounded to float32": lambda: judged(N20.astype(np.float32), N20 / 3 * 3 + 1e-9 * N20),
    "conjugated": conjugated,
    "2.00x": lambda: judged(2 * N20, N20),
    "0.25x": lambda: judged(0.25 * N20, N20),
    "-2.00x": lambda: judged(-2 * N20, N20),
    "1.000003x": lambda: judged(1.000003 * N20, N20),
    "0.125x (= 1/8)": lambda: judged(N20 / 8, N20),
    "sign flipped": lambda: judged(-N20, N20),
    "0.03125x (= 1/m, m=32)": lambda: judged(N20 / 32, N20, batch_size=32),
    "32x (= m, m=32)": lambda: judged(32 * N20, N20, batch_size=32),
    "0.03125x (= 1/32)": lambda: judged(N20 / 32, N20),
    "the gradient of b": lambda: judged(N20[::-1] + 1, N20, others={"b": (N20[::-1] + 1, np.full(20, BAR))}),
    "transposed": lambda: judged(M.T, M, M.shape),
    "axes permuted (1, 0, 2)": lambda: judged(K.transpose(1, 0, 2), K, K.shape),
    "reversed along axis 2": lambda: judged(K[..., ::-1], K, K.shape),
    "reversed along axes (1, 2)": lambda: judged(K[:, ::-1, ::-1], K, K.shape),
    "shifted by 1 along axis 0": lambda: judged(np.roll(K, 1, 0), K, K.shape),
    "6 of 48 wrong (all in row 2, 2.00x)": in_one_row,
    "2 of 20 wrong (elements 3, 7)": lambda: judged(N20 + (np.arange(20) == 3) - 3 * (np.arange(20) == 7), N20),
    "17 of 20 wrong": scattered,
    "loss NaN/inf near 1 of 2, element 0": lambda: undecided([NONFINITE, PASS]),
    "too noisy at 3 of 20": lambda: undecided([NOISE] * 3 + [PASS] * 17, reason="noise"),
    "too noisy (resolution 1.5e-01)": lambda: undecided([PASS] * 20, reason="noise", tensor_resolution=0.15),
    "every element at a kink": lambda: undecided([KINK] * 4, reason="kink"),
    "1 of 4 at kinks, element 0": lambda: undecided([KINK, PASS, PASS, PASS], reason="kink"),
    "1.01x, in float32 only": lambda: only_at_low_precision(judged(1.01 * N20, N20), "float32", True),
    "no derivative at this precision": lambda: undecided([PASS] * 4, reason="noise", ragged=True),
    "non-deterministic loss": lambda: undecided([PASS] * 4, reason="noise", ragged=True, repeat_spread=0.1),
}


def documented() -> dict[str, str | None]:
    """Each example of the table's first column -> the kind its row names (None: "the diagnosis's own")."""
    table = re.split(r"\n##+ ", DOC.read_text().split("## Diagnoses", 1)[1], maxsplit=1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    kinds = {}
    for row in rows:
        kind = re.fullmatch(r"`(\w+)`", row[1])
        for example in re.findall(r"`([^`]+)`", row[0]):
            kinds[example] = kind.group(1) if kind else None
    return kinds


def test_every_documented_diagnosis_is_produced_and_every_produced_one_documented():
    table = documented()
    assert sorted(table) == sorted(CASES)
    for summary, make in CASES.items():
        made = make()
        assert made.summary == summary
        assert made.kind in KINDS and (table[summary] is None or made.kind == table[summary]), (summary, made.kind)


def test_the_findings_table_documents_every_field_and_scope():
    """docs/report.md's table of a Finding's fields names each field once, and every scope."""
    table = DOC.read_text().split("### Findings", 1)[1].split("\n## ", 1)[0]
    named = [name for line in table.splitlines() if line.startswith("| `") for name in re.findall(r"`(\w+)`", line.split(" | ")[0])]
    assert sorted(named) == sorted(f.name for f in fields(Finding))
    scopes = load_schema()["$defs"]["tensor"]["properties"]["finding"]["oneOf"][1]["properties"]["scope"]["enum"]
    scope_row = next(line for line in table.splitlines() if line.startswith("| `scope`"))
    assert set(re.findall(r"`(\w+)` \(", scope_row)) == set(scopes)
