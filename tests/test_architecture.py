"""The layout follows the data flow: each stage imports only the stages below it (the import-linter
contracts in ``pyproject.toml``), no module imports itself back through others, counting imports
inside functions, and the report carries what its renderers need, so they never ask the checker."""

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradprobe as gp
from gradprobe.strategies._options import CHECK_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
#: The contracts of ``[tool.importlinter]``: the stages' layers, and the report importing no stage.
CONTRACTS = 2
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


@pytest.mark.slow
def test_import_linter_contracts_are_kept():
    pytest.importorskip("importlinter")
    run = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, str(ROOT / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # every contract was read and checked, none skipped for a typo in its table
    assert re.search(rf"Contracts: {CONTRACTS} kept, 0 broken", run.stdout), run.stdout


def import_cycles(graph) -> list[list[str]]:
    """Each cycle once, as the modules along it (the first again at the end)."""
    cycles, seen = [], set()
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None and frozenset(back) not in seen:
                seen.add(frozenset(back))
                cycles.append([module, *back])
    return cycles


def test_no_module_imports_itself_back():
    """Imports inside functions count; those under ``if TYPE_CHECKING:`` do not, since they never
    run (the renderers name the result types only there, while the types call them lazily)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("gradprobe", exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_check_states_the_defaults_that_options_hold():
    keywords = {
        name: parameter.default
        for name, parameter in inspect.signature(gp.check).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(CHECK_DEFAULTS) <= set(keywords)
    assert {name: keywords[name] for name in CHECK_DEFAULTS} == CHECK_DEFAULTS


def test_report_options_hold_what_differs_from_the_defaults_and_the_renderer_writes_them_out():
    def loss(p):
        return float(np.sum(p**3))

    def grad(p):
        return 3 * p**2

    x = np.linspace(0.5, 1.5, 4)
    spelled_out = gp.check(loss, grad, x, rtol=None, vectorized=False, confidence=0.999, probes=None, budget=None)
    assert spelled_out.options == {}
    assert spelled_out.reproduce == "gp.check(loss, grad, params, strategy='full', method='richardson', seed=0)"
    changed = gp.check(loss, grad, x, rtol=0.01, shadow=False, seed=2)
    assert changed.options == {"rtol": 0.01, "shadow": False}
    assert changed.reproduce == (
        "gp.check(loss, grad, params, strategy='full', method='richardson', seed=2, rtol=0.01, shadow=False)"
    )
