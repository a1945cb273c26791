"""The benchmark runner skips and reports a module it cannot import."""

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


def test_runner_skips_a_missing_module(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "HEADLINE", ["benchmarks.not_a_benchmark"])
    out = runner.main(["--quick", "--out", str(tmp_path)])
    assert "not_a_benchmark" in out["skipped"]
    assert "skipped" in capsys.readouterr().out
