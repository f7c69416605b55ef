"""Issue 13's demo acceptance: ``train.precision=bf16`` gives test accuracy within 5 points of fp32.

The demo main job's settings (``runners/<method>.yaml`` + the demo layer: tiny towers pretrained on the
synthetic concept world, weights tag ``demo``, built once per test session into the session cache),
llp_cls, 16 shots, seed 1; the same run in fp32 and in bf16 with the frozen towers stored in bf16.
Every method is measured by ``scripts/precision_demo_table.py`` (docs/design.md, "Devices and precision").
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POINTS = 5.0


def demo_run(method: str, precision: str, results: Path) -> dict:
    import avfewshot
    from avfewshot.api import make_config

    cfg = make_config(str(REPO / "runners" / f"{method}.yaml"),
                      [f"train.precision={precision}", f"model.frozen_dtype={precision}"],
                      task="llp_cls", method=method, shots=16, seed=1, results_dir=str(results / precision))
    return avfewshot.run(cfg=cfg, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dgsct", "coop"])
def test_bf16_demo_accuracy_is_within_5_points_of_fp32(tmp_path, method):
    fp32 = demo_run(method, "fp32", tmp_path)
    bf16 = demo_run(method, "bf16", tmp_path)
    assert fp32["environment"]["precision"] == "fp32" and bf16["environment"]["precision"] == "bf16"
    config = next((tmp_path / "bf16").rglob("config.yaml")).read_text()
    assert "precision: bf16" in config and "frozen_dtype: bf16" in config  # bf16 actually ran
    chance = 100.0 / 25
    assert fp32["test"]["accuracy"] > chance  # a run that learned something: the comparison means something
    assert abs(bf16["test"]["accuracy"] - fp32["test"]["accuracy"]) <= POINTS, (fp32["test"], bf16["test"])
