import json
import shlex
import subprocess
import sys
import textwrap

import pytest

from gradprobe.tools._cli import main


def test_demo_shows_the_seed_verdicts(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    buggy = out.split("== ")[2]
    assert "gradprobe FAIL: 2 of 6 tensors wrong (b1, W2)" in buggy
    assert "4.00x" in buggy and "2.00x" in buggy
    fixed = out.split("== ")[3]
    assert "gradprobe PASS" in fixed and "resolution" in fixed and "FAIL" not in fixed


@pytest.mark.slow
def test_python_dash_m_and_help():
    run = subprocess.run([sys.executable, "-m", "gradprobe", "demo", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "deeplearning.ai" in run.stdout
    run = subprocess.run([sys.executable, "-m", "gradprobe", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "demo" in run.stdout


def test_no_command_prints_help_and_usage_exit_code(capsys):
    assert main([]) == 3
    assert "usage: gradprobe" in capsys.readouterr().out


# -- gradprobe check FILE.py:NAME ---------------------------------------------------------------------
USER_FILE = '''
import numpy as np


def _loss(p):
    return float(np.sum(np.tanh(p["W"] @ p["x"])))


def _grad(p, factor=1.0):
    s = 1 - np.tanh(p["W"] @ p["x"]) ** 2
    return {"W": np.outer(s, p["x"]), "x": factor * p["W"].T @ s}


def _params():
    return {"W": np.random.default_rng(0).standard_normal((3, 4)), "x": np.ones(4)}


def right():
    return _loss, _grad, _params()


def doubled():
    return _loss, lambda p: _grad(p, 2.0), _params()


def on_a_kink():
    return (lambda p: float(np.sum(np.maximum(p, 0))), lambda p: (p > 0) * 1.0, np.zeros(3))


def loss_raises():
    def loss(p):
        return helper_that_fails(p)
    return loss, _grad, _params()


def helper_that_fails(p):
    raise KeyError("no such layer: 'fc3'")


def problem_raises():
    return helper_that_fails(None)


def two_things():
    return _loss, _grad


def with_two_frameworks():
    return {"torch": _loss, "jax": _loss, "inputs": ()}


def with_numpy_keys():
    return {"loss": _loss, "grad": _grad, "params": _params()}


def with_no_inputs():
    return {"torch": _loss}


def with_a_typo():
    return {"torch": _loss, "input": (1.0,)}


def with_bare_args():
    return {"jax": _loss, "args": np.ones(3)}


def with_a_name_for_fn():
    return {"jax": "my_layer", "args": (np.ones(3),)}


not_a_function = 3
'''


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    path = tmp_path / "my_model.py"
    path.write_text(textwrap.dedent(USER_FILE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return "my_model.py"


@pytest.mark.parametrize(("name", "code"), [("right", 0), ("doubled", 1), ("on_a_kink", 2)])
def test_check_exit_codes(user_file, capsys, name, code):
    assert main(["check", f"{user_file}:{name}"]) == code
    out = capsys.readouterr().out
    assert out.startswith("gradprobe " + ["PASS", "FAIL", "INCONCLUSIVE"][code])


def test_check_prints_the_diagnosis_and_a_command_that_reproduces_it(user_file, capsys):
    assert main(["check", f"{user_file}:doubled", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert "gradprobe FAIL: 1 of 2 tensors wrong (x)" in out
    assert "hint: x is exactly 2.00x the numerical gradient" in out
    assert out.rstrip().endswith(
        "reproduce: gradprobe check my_model.py:doubled --strategy full --method richardson --seed 3"
    )


def test_check_json_follows_the_schema(user_file, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    import gradprobe as gp

    assert main(["check", f"{user_file}:doubled", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, gp.Report.json_schema())
    assert data["status"] == "fail" and data["tensors"][1]["diagnosis"] == "2.00x"


def test_check_html(user_file, tmp_path, capsys):
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    assert main(["check", f"{user_file}:doubled", "--html", str(target)]) == 1
    page = target.read_text(encoding="utf-8")
    assert "1 of 2 tensors wrong (x)" in page
    assert "gradprobe check my_model.py:doubled --strategy full" in page
    assert f"HTML report written to {target}" in capsys.readouterr().err
    assert main(["check", f"{user_file}:doubled", "--html", str(tmp_path / "missing" / "r.html")]) == 3


def _is_ours(line):
    return "gradprobe/_" in line or "gradprobe\\_" in line or "importlib" in line


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("loss_raises", ["in loss", "in helper_that_fails", "KeyError: \"no such layer: 'fc3'\""]),
        ("problem_raises", ["in problem_raises", "in helper_that_fails", "KeyError"]),
    ],
)
def test_errors_in_the_users_code_show_the_users_traceback(user_file, capsys, name, shown):
    assert main(["check", f"{user_file}:{name}"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert 'my_model.py", line' in err
    for part in shown:
        assert part in err
    assert not any(_is_ours(line) for line in err.splitlines() if line.startswith("  File"))
    assert err.rstrip().splitlines()[-1].startswith("gradprobe: ")


def test_an_error_while_importing_the_file_shows_its_traceback(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\n\nscale = 1 / 0\n", encoding="utf-8")
    assert main(["check", f"{broken}:anything"]) == 3
    err = capsys.readouterr().err
    assert 'broken.py", line 3, in <module>' in err and "ZeroDivisionError: division by zero" in err
    assert not any(_is_ours(line) for line in err.splitlines() if line.startswith("  File"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "my_model.py"], "TARGET must look like path/to/file.py:NAME"),
        (["check", "nowhere.py:f"], "no such file: 'nowhere.py'"),
        (["check", "my_model.py:missing"], "my_model.py defines no 'missing'; its functions: doubled, "),
        (["check", "my_model.py:not_a_function"], "is a int, not a function returning (loss, grad, params)"),
        (
            ["check", "my_model.py:two_things"],
            "my_model.py:two_things() must return (loss, grad, params), {'torch': fn, 'inputs': (x, ...)} or "
            "{'jax': fn, 'args': (x, ...)}; it returned a tuple of 2.",
        ),
        (
            ["check", "my_model.py:with_two_frameworks"],
            "with_two_frameworks() returned a dict with keys ['inputs', 'jax', 'torch']; a problem as a dict is "
            "{'torch': fn, 'inputs': (x, ...)} or {'jax': fn, 'args': (x, ...)}: exactly one of 'torch' and 'jax'",
        ),
        (["check", "my_model.py:with_numpy_keys"], "returned a dict with keys ['grad', 'loss', 'params']; a problem"),
        (
            ["check", "my_model.py:with_no_inputs"],
            "with_no_inputs() returned no 'inputs'; a PyTorch problem is {'torch': fn, 'inputs': (x, ...)}.",
        ),
        (
            ["check", "my_model.py:with_a_typo"],
            "with_a_typo() returned a dict with unknown keys ['input']; a PyTorch problem is",
        ),
        (
            ["check", "my_model.py:with_bare_args"],
            "with_bare_args()['args'] must be a tuple of fn's args, got a ndarray; write (x,) for a single one.",
        ),
        (["check", "my_model.py:with_a_name_for_fn"], "()['jax'] must be the function to check, got a str."),
        (["check", "my_model.py:right", "--strategy", "guess"], "`strategy` must be one of"),
        (["check", "my_model.py:right", "--seed", "many"], "argument --seed: invalid int value: 'many'"),
        *(
            (["check", "my_model.py:right", "--budget", budget], f"argument --budget: expected a positive number of "
             f"loss evaluations (e.g. 2000) or a duration (e.g. 30s, 500ms, 5min, 1h), got {budget!r}")
            for budget in ("abc", "0", "-5", "2.5", "30 parsecs")
        ),
        (["check", "my_model.py:right", "--budget", "5"], "`budget` of 5 evaluations is too small"),
        *(
            (["check", "my_model.py:right", "--confidence", confidence],
             f"argument --confidence: expected a probability between 0 and 1 (e.g. 0.999), got {confidence!r}")
            for confidence in ("2", "1", "0", "-0.5", "nan", "high")
        ),
        (["check"], "the following arguments are required: TARGET"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_and_input_errors_exit_with_3(user_file, capsys, argv, message):
    assert main(argv) == 3
    assert message in capsys.readouterr().err


def test_check_help_documents_the_target(capsys):
    assert main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "path/to/file.py:NAME" in out and "(loss, grad, params)" in out
    assert "0 pass, 1 fail, 2 inconclusive, 3 usage or input error" in out
    assert '{"torch": fn, "inputs": (x, ...)}' in out and '{"jax": fn, "args": (x, ...)}' in out
    for option in ("--strategy", "--seed", "--budget", "--confidence", "--json", "--html FILE"):
        assert option in out


def test_version(capsys):
    import gradprobe as gp

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"gradprobe {gp.__version__}\n"


@pytest.mark.parametrize(("budget", "given"), [("2000", 2000), ("30s", "30s"), (" 1.5min", " 1.5min")])
def test_budget_and_confidence_reach_the_check_and_the_reproduce_line(user_file, capsys, budget, given):
    assert main(["check", f"{user_file}:doubled", "--budget", budget, "--confidence", "0.99", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["budget"] == given and report["options"]["confidence"] == 0.99
    assert main(["check", f"{user_file}:doubled", "--budget", budget, "--confidence", "0.99"]) == 1
    reproduce = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert reproduce.endswith(f"--seed 0 --budget {shlex.quote(str(given))} --confidence 0.99")


def test_a_budget_is_kept_and_what_it_leaves_unchecked_is_inconclusive(user_file, capsys):
    # every coordinate of the 16 parameters would take 189 evaluations
    assert main(["check", f"{user_file}:right", "--budget", "150", "--strategy", "full", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "inconclusive" and report["nfev"] <= 150


@pytest.mark.slow
def test_the_installed_command_runs_a_check(user_file):
    run = subprocess.run(
        [sys.executable, "-m", "gradprobe", "check", f"{user_file}:doubled", "--json"], capture_output=True, text=True
    )
    assert run.returncode == 1 and json.loads(run.stdout)["status"] == "fail"


# -- PyTorch and JAX problems -------------------------------------------------------------------------
TORCH_FILE = '''
import torch


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W):
        ctx.save_for_backward(x, W)
        return x @ W.T

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, SCALE * g.T @ x


def _inputs():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=generator)  # data: not checked
    W = torch.randn(4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    return x, W


def right():
    global SCALE
    SCALE = 1.0
    return {"torch": Linear.apply, "inputs": _inputs()}


def doubled():
    global SCALE
    SCALE = 2.0
    return {"torch": Linear.apply, "inputs": list(_inputs())}
'''

JAX_FILE = '''
import jax
import jax.numpy as jnp
import numpy as np


@jax.custom_vjp
def softplus(x):
    return jnp.log1p(jnp.exp(x))


def _forward(x):
    return softplus(x), x


def _backward(x, g):
    return (g * jax.nn.sigmoid(x) * SCALE,)


softplus.defvjp(_forward, _backward)


def right():
    global SCALE
    SCALE = 1.0
    return {"jax": softplus, "args": (jnp.array([0.5, -1.0, 2.0]),)}


def halved():
    global SCALE
    SCALE = 0.5
    return {"jax": lambda w, x: jnp.sum(softplus(x @ w)), "args": (jnp.ones(3), np.eye(3))}
'''


@pytest.fixture
def framework_files(tmp_path, monkeypatch):
    (tmp_path / "torch_layer.py").write_text(TORCH_FILE, encoding="utf-8")
    (tmp_path / "jax_layer.py").write_text(JAX_FILE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)


def test_a_torch_problem_is_checked_by_gp_torch_check(framework_files, capsys):
    pytest.importorskip("torch")
    assert main(["check", "torch_layer.py:right"]) == 0
    assert capsys.readouterr().out.startswith("gradprobe PASS")
    assert main(["check", "torch_layer.py:doubled", "--seed", "2"]) == 1
    out = capsys.readouterr().out
    assert "gradprobe FAIL: 1 of 1 tensors wrong (input1)" in out  # only W requires grad
    assert "hint: input1 is exactly 2.00x the numerical gradient" in out
    assert "note: inputs not checked: `input0` (requires_grad=False)." in out
    assert out.rstrip().endswith("reproduce: gradprobe check torch_layer.py:doubled --strategy full --method richardson --seed 2")
    assert main(["check", "torch_layer.py:doubled", "--json", "--budget", "500"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["budget"] == 500 and report["tensors"][0]["diagnosis"] == "2.00x"


def test_a_jax_problem_is_checked_by_gp_jax_check(framework_files, capsys):
    pytest.importorskip("jax")
    assert main(["check", "jax_layer.py:right"]) == 0
    assert capsys.readouterr().out.startswith("gradprobe PASS")
    assert main(["check", "jax_layer.py:halved", "--confidence", "0.99"]) == 1
    out = capsys.readouterr().out
    assert "gradprobe FAIL: 2 of 2 tensors wrong (w, x)" in out
    assert "hint: w is 1/2 of the numerical gradient" in out and "hint: x is 1/2 of the numerical gradient" in out
    assert out.rstrip().endswith("--seed 0 --confidence 0.99")


def test_a_framework_that_is_not_installed_gets_the_install_hint(tmp_path, capsys, monkeypatch):
    import importlib.util

    (tmp_path / "layer.py").write_text("def layer():\n    return {'jax': abs, 'args': (1.0,)}\n", encoding="utf-8")
    # As on a machine without JAX: gradprobe.jax is imported afresh, and finds no jax.
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else find_spec(name, *a))
    monkeypatch.delitem(sys.modules, "gradprobe.jax", raising=False)
    assert main(["check", f"{tmp_path / 'layer.py'}:layer"]) == 3
    assert "gradprobe: gradprobe.jax needs JAX, which is not installed: pip install gradprobe[jax]" in capsys.readouterr().err
