"""What the benchmark scripts share: a markdown table, and their own section of RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path


def markdown(rows: list[dict[str, str]]) -> str:
    """`rows` (dicts with the same keys, in column order) as a markdown table."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_section(path: Path, title: str, section: str) -> None:
    """Replace (or append) the section headed `title` ("## Networks") of `path` with `section`,
    which starts with that heading; the other sections are left alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^" + re.escape(title) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
