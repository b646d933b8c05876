import json
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
        (["check", "my_model.py:two_things"], "must return (loss, grad, params); it returned a tuple of 2"),
        (["check", "my_model.py:right", "--strategy", "guess"], "`strategy` must be one of"),
        (["check", "my_model.py:right", "--seed", "many"], "argument --seed: invalid int value: 'many'"),
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
    for option in ("--strategy", "--seed", "--json", "--html FILE"):
        assert option in out


@pytest.mark.slow
def test_the_installed_command_runs_a_check(user_file):
    run = subprocess.run(
        [sys.executable, "-m", "gradprobe", "check", f"{user_file}:doubled", "--json"], capture_output=True, text=True
    )
    assert run.returncode == 1 and json.loads(run.stdout)["status"] == "fail"
