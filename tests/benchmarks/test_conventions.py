"""Smoke test of benchmarks/conventions.py and of the runner."""

import json

from benchmarks import conventions


def test_conventions_quick(tmp_path):
    metrics = conventions.main(["--quick", "--out", str(tmp_path)])
    assert set(metrics) == {"sgd", "momentum", "nesterov"}
    for name in metrics:
        assert metrics[name]["max_abs_diff_vs_optax"] == 0.0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["momentum"]["bitwise_equal"] is True
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["args"]["quick"] is True and "jax" in config["versions"]
