"""``avfewshot supervised --params``: live trainable and total parameters per module, built on the ``meta`` device.

AVE / AVVP: the whole model (towers, the four unit lists, head; with ``keep_unused`` the released never-used
modules, so the total equals the released model's: AVE 461.28 M, AVVP 458.91 M). AVS / AVQA: the real-size
heads (the adapted encoder's AVS / AVQA columns are not built yet), live and as the released code registers them.
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
    from ..supervised_heads.params import head_counts

    kind = {"avs_s4": "s4", "avs_ms3": "ms3", "avqa": "avqa"}[cfg.task]
    counts = head_counts(kind)
    return [
        f"supervised {cfg.task}: real-size head only (the adapted encoder's {kind} unit column is not built yet; "
        f"docs/supervised_heads.md §5 has the totals)",
        f"{'module':<24}{'trainable':>14}{'total':>14}",
        f"{'head (live)':<24}{counts['live']:>14,}{counts['live']:>14,}",
        f"{'head (released registry)':<24}{'':>14}{counts['released']:>14,}",
    ]
