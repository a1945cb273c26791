"""Smoke test of benchmarks/gan_stability.py: --quick writes its files."""

import json

import pytest

from benchmarks import gan_stability


@pytest.mark.slow
def test_quick_run_writes_outputs(tmp_path):
    out = gan_stability.main(["--quick", "--out", str(tmp_path)])
    for name in ("config.json", "metrics.json", "stability.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["cells"]) == 2  # lambda 0 and lambda > 0, one lr, one schedule
    assert {c["reg_weight"] for c in saved["cells"]} == {0.0, 10.0}
    assert "n_d=1, n_g=5" in out["verdict"]
