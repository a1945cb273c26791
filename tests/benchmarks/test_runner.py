"""The benchmark runner: the headline order, and failures that fail the command."""

import subprocess
import sys
import types
from pathlib import Path

from benchmarks import __main__ as runner


def test_runner_lists_the_five_questions_in_order():
    names = [n.rsplit(".", 1)[-1] for n in runner.HEADLINE]
    assert names[:5] == [
        "sgd_sde",
        "batch_size",
        "learning_rate",
        "momentum",
        "nesterov",
    ]
    assert "conventions" in names


def _fake(monkeypatch, name, main):
    module = types.ModuleType(f"benchmarks.{name}")
    module.main = main
    monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)


def test_a_missing_module_fails_the_command(tmp_path, monkeypatch, capsys):
    ran = []
    _fake(monkeypatch, "fake_ok", lambda argv: ran.append(argv) or {"ok": 1})
    monkeypatch.setattr(
        runner, "HEADLINE", ["benchmarks.not_a_benchmark", "benchmarks.fake_ok"]
    )
    code = runner.cli(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED: benchmarks.not_a_benchmark (ModuleNotFoundError" in out
    assert "failed: not_a_benchmark" in out
    # the benchmarks after the failure still ran
    assert ran == [["--out", f"{tmp_path}/fake_ok", "--quick"]]
    results = runner.main(["--quick", "--out", str(tmp_path)])
    assert "not_a_benchmark" in results["failed"] and results["fake_ok"] == {"ok": 1}


def test_a_benchmark_that_raises_fails_the_command(tmp_path, monkeypatch, capsys):
    def broken(argv):
        raise ImportError("cannot import name 'x' from 'dynopt'")

    _fake(monkeypatch, "fake_broken", broken)
    monkeypatch.setattr(runner, "HEADLINE", ["benchmarks.fake_broken"])
    assert runner.cli(["--out", str(tmp_path)]) == 1
    assert "FAILED: benchmarks.fake_broken (ImportError" in capsys.readouterr().out


def test_all_passing_exits_zero(tmp_path, monkeypatch):
    _fake(monkeypatch, "fake_ok", lambda argv: {})
    monkeypatch.setattr(runner, "HEADLINE", ["benchmarks.fake_ok"])
    assert runner.cli(["--out", str(tmp_path)]) == 0


def test_python_dash_m_exits_non_zero_on_a_failure(tmp_path):
    """The real command, ``python -m benchmarks --only sgd_sde``, with that
    headline benchmark replaced by one whose import is broken."""
    code = (
        "import runpy, sys, types\n"
        "fake = types.ModuleType('benchmarks.sgd_sde')\n"
        "def main(argv):\n"
        "    raise ImportError('broken dependency')\n"
        "fake.main = main\n"
        "sys.modules['benchmarks.sgd_sde'] = fake\n"
        "sys.argv = ['benchmarks', '--only', 'sgd_sde', '--out', sys.argv[1]]\n"
        "runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],  # the repository root
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED: benchmarks.sgd_sde (ImportError: broken dependency)" in proc.stdout
