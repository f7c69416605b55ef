"""``avfewshot supervised --params``: live trainable and total parameters per module, built on the ``meta`` device.

The whole model (towers, the four unit lists, head; with ``keep_unused`` the released never-used modules, so the
total equals the released model's: AVE 461.28 M, AVVP 458.91 M, S4 594.77 M, MS3 602.85 M, AVQA 516.85 M). AVS /
AVQA also print the live trainable count of the fixed model (no never-used modules, gated audio units, HTS-AT
frozen).
"""
from __future__ import annotations

from typing import List

import torch

from .supervised_config import SupervisedRunConfig


def supervised_parameter_lines(cfg: SupervisedRunConfig, keep_unused: bool = True) -> List[str]:
    size = cfg.model.size
    if cfg.task in ("ave", "avvp"):
        from ..supervised.model import format_report

        with torch.device("meta"):
            if cfg.task == "ave":
                from ..supervised.ave import SupervisedAVE, SupervisedAVEConfig

                model = SupervisedAVE(SupervisedAVEConfig(size=size, keep_unused=keep_unused))
            else:
                from ..supervised.avvp import SupervisedAVVP, SupervisedAVVPConfig

                model = SupervisedAVVP(SupervisedAVVPConfig(size=size, keep_unused=keep_unused,
                                                            st_features=cfg.model.st_features or keep_unused))
        head = f"supervised {cfg.task}, {size} size" + (", with the released never-used modules" if keep_unused else "")
        return [head, *format_report(model)]
    from ..supervised.model import format_report, parameter_totals
    from ..supervised_heads.adapted import SupervisedAVQA, SupervisedAVQAConfig, SupervisedAVS, SupervisedAVSConfig

    def build(released: bool):
        parity = {"keep_unused": True, "ungated_audio": True} if released else {}
        with torch.device("meta"):
            if cfg.task == "avqa":
                return SupervisedAVQA(SupervisedAVQAConfig(size=size, **parity))
            preset = cfg.task.split("_")[1]
            return SupervisedAVS(SupervisedAVSConfig(size=size, preset=preset,
                                                     train_htsat=released and preset == "s4", **parity))

    model = build(keep_unused)
    head = f"supervised {cfg.task}, {size} size" + (
        ", as released (never-used modules registered, ungated audio units" + (", HTS-AT trainable)" if
                                                                             cfg.task == "avs_s4" else ")")
        if keep_unused else "")
    live = parameter_totals(build(False))["live_trainable"] if keep_unused else parameter_totals(model)["live_trainable"]
    return [head, *format_report(model), f"live trainable (fixed defaults, what the optimiser updates): {live:,}"]
