"""Refresh the README's example outputs (quick start, PyTorch, second order, several points, complex parameters,
pytest, CLI) with what the current code prints.

Run from anywhere: ``python docs/update_readme.py``. Every block it rewrites is real output of
the code shown next to it, so the README never shows a report gradprobe would not print.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
TEST_FILE = '''
import gradprobe as gp
from my_model import problem

def test_my_layer_gradient():
    loss, grad, params = problem()
    gp.assert_gradients(loss, grad, params)
'''


def _replace_block(text: str, before: str, new: str) -> str:
    """Replace the body of the first ```text block that follows `before`."""
    pattern = re.compile(re.escape(before) + r"(.*?```text\n)(.*?)(```)", re.S)
    match = pattern.search(text)
    if match is None:
        raise SystemExit(f"README: no ```text block after {before!r}")
    return text[: match.start(2)] + new + text[match.end(2) :]


def _run_example(text: str, heading: str) -> str:
    """Run the first ```python block after `heading`; return what it prints."""
    code = re.search(re.escape(heading) + r".*?```python\n(.*?)```", text, re.S).group(1)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def main() -> int:
    text = README.read_text(encoding="utf-8")
    for heading in ("## Check your own function", "## PyTorch and JAX", "**Second order, forward mode", "## Several points",
                    "## Complex parameters"):
        text = _replace_block(text, heading, _run_example(text, heading))

    with tempfile.TemporaryDirectory() as tmp:
        model = re.search(r"```python\n# my_model.py\n(.*?)```", text, re.S).group(1)
        Path(tmp, "my_model.py").write_text(model, encoding="utf-8")
        cli = subprocess.run(
            [sys.executable, "-m", "gradprobe", "check", "my_model.py:problem", "--seed", "0"],
            cwd=tmp, capture_output=True, text=True,
        )  # fmt: skip
        if cli.returncode != 1:
            raise SystemExit(f"the CLI example should fail the check:\n{cli.stderr}")
        text = _replace_block(text, "## From the command line", "$ gradprobe check my_model.py:problem --seed 0\n" + cli.stdout)

        layer = re.search(r"```python\n# my_layer.py\n(.*?)```", text, re.S).group(1)
        Path(tmp, "my_layer.py").write_text(layer, encoding="utf-8")
        cli = subprocess.run(
            [sys.executable, "-m", "gradprobe", "check", "my_layer.py:problem"], cwd=tmp, capture_output=True, text=True
        )
        if cli.returncode != 1:
            raise SystemExit(f"the PyTorch CLI example should fail the check:\n{cli.stderr}")
        text = _replace_block(text, "# my_layer.py", "$ gradprobe check my_layer.py:problem\n" + cli.stdout)

        Path(tmp, "test_layer.py").write_text(textwrap.dedent(TEST_FILE), encoding="utf-8")
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_layer.py"],
            cwd=tmp, capture_output=True, text=True,
        )  # fmt: skip
        lines = run.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("    def test_my_layer_gradient"))
        end = next(i for i, line in enumerate(lines) if line.startswith("test_layer.py:") and "GradientMismatch" in line)
        text = _replace_block(text, "## In pytest", "\n".join(lines[start : end + 1]) + "\n")
    README.write_text(text, encoding="utf-8")
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
