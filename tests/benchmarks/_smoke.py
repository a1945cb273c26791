"""The checks every benchmark smoke test makes on a ``--quick`` run."""

import json


def run_quick(module, tmp_path, *plots: str) -> dict:
    """Runs ``module.main`` with ``--quick``; checks the files it wrote.

    Asserts that config.json, metrics.json and each of ``plots`` are non-empty,
    that metrics.json holds the keys of the returned metrics and that the saved
    config records the quick run. Returns the metrics.
    """
    metrics = module.main(["--quick", "--out", str(tmp_path)])
    for file in ("config.json", "metrics.json", *plots):
        assert (tmp_path / file).stat().st_size > 0, file
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(metrics)
    assert json.loads((tmp_path / "config.json").read_text())["args"]["quick"] is True
    return metrics
