import subprocess
import sys

from gradprobe._cli import main


def test_demo_shows_the_seed_verdicts(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    buggy = out.split("== ")[2]
    assert "gradprobe FAIL: 2 of 6 tensors wrong (b1, W2)" in buggy
    assert "4.00x" in buggy and "2.00x" in buggy
    fixed = out.split("== ")[3]
    assert "gradprobe PASS" in fixed and "resolution" in fixed and "FAIL" not in fixed


def test_python_dash_m_and_help():
    run = subprocess.run([sys.executable, "-m", "gradprobe", "demo", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "deeplearning.ai" in run.stdout
    run = subprocess.run([sys.executable, "-m", "gradprobe", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "demo" in run.stdout


def test_no_command_prints_help_and_usage_exit_code(capsys):
    assert main([]) == 3
    assert "usage: gradprobe" in capsys.readouterr().out
