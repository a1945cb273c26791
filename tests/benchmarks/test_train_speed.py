"""Smoke test of benchmarks/train_speed.py."""

import json
import sys

import pytest

from benchmarks import train_speed


@pytest.mark.slow
def test_train_speed_quick(tmp_path):
    metrics = train_speed.main(["--quick", "--out", str(tmp_path)])
    for case in ("vae", "gan", "conv_vae", "conv_gan"):
        sps = metrics[case]["steps_per_second"]
        assert sps["genvi"] > 0 and sps["pytorch"] > 0
        assert "pytorch_compiled" not in sps  # --quick leaves torch.compile out
        lo, hi = metrics[case]["ratio_ci95"]
        assert lo <= hi
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) >= {"vae", "gan", "conv_vae", "conv_gan"}
    assert (tmp_path / "train_speed.png").stat().st_size > 0
    assert (tmp_path / "config.json").exists()


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"train_speed: needs PyTorch.*`test` extra"):
        train_speed._torch()
