"""What the supervised task models share: the few-shot Method contract where it fits, and parameter counts.

A task model holds ``encoder`` (``AdaptedSwinHTSAT``: frozen towers + DG-SCT units) and ``head``; the
engine-facing calls are ``forward(batch)``, ``loss(batch, outputs, epoch) -> (loss, parts)``,
``trainable_parameters()``, ``trainable_state()`` / ``load_trainable_state()``. The frozen towers never
leave eval mode (``FrozenTower``), whatever ``train()`` is called with.

With ``keep_unused=True`` the model also registers ``released_unused``: modules the released code
builds (and counts) but never uses, so the registered total equals the released model's (§5). They
are frozen and never called; the live trainable count leaves them out.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import UserError

#: state-dict prefixes of the frozen towers (never part of a trainable state)
FROZEN_PREFIXES = ("encoder.visual.", "encoder.audio.")


class SupervisedModel(nn.Module):
    name = "supervised"

    def __init__(self, encoder: nn.Module, head: nn.Module, released_unused: Optional[nn.Module] = None):
        super().__init__()
        self.encoder = encoder
        self.head = head
        if released_unused is not None:
            for p in released_unused.parameters():
                p.requires_grad_(False)
            self.released_unused = released_unused

    # -- the Method contract -------------------------------------------------------------------
    def trainable_parameters(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def _own_keys(self):
        return [k for k in self.state_dict() if not k.startswith(FROZEN_PREFIXES)]

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        """Units, head (and the parity-only modules): parameters and persistent buffers, not the towers."""
        state = self.state_dict()
        return {k: state[k].detach().clone() for k in self._own_keys()}

    def load_trainable_state(self, state: Dict[str, torch.Tensor], strict: bool = True) -> None:
        own = set(self._own_keys())
        missing, unexpected = own - set(state), set(state) - own
        if strict and (missing or unexpected):
            raise UserError(f"checkpoint does not fit the supervised {self.name} model: missing {sorted(missing)[:5]}, "
                            f"unexpected {sorted(unexpected)[:5]}")
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)

    def batch_inputs(self, batch) -> Tuple[torch.Tensor, torch.Tensor]:
        for key in ("frames", "audio"):
            if key not in batch:
                raise UserError(f"supervised {self.name}: the batch has no {key!r} (the supervised runners read "
                                f"media; the frozen-feature cache does not apply)")
        return batch["frames"], batch["audio"]


def parameter_report(model: nn.Module) -> "OrderedDict[str, Tuple[int, int]]":
    """Module group -> (trainable, total) parameters: the two towers, the four unit lists, the head,
    any extra inputs and the parity-only modules."""
    groups: "OrderedDict[str, List[int]]" = OrderedDict()
    for name, p in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "encoder":
            key = ".".join(parts[:2])
        else:
            key = parts[0]
        row = groups.setdefault(key, [0, 0])
        row[1] += p.numel()
        if p.requires_grad:
            row[0] += p.numel()
    return OrderedDict((k, (v[0], v[1])) for k, v in groups.items())


def parameter_totals(model: nn.Module) -> Dict[str, int]:
    """Live trainable (what the optimiser updates) and registered total parameters."""
    report = parameter_report(model)
    return {"live_trainable": sum(v[0] for v in report.values()), "total": sum(v[1] for v in report.values())}


def format_report(model: nn.Module) -> List[str]:
    rows = parameter_report(model)
    width = max(len(k) for k in rows) + 2
    lines = [f"{'module':<{width}}{'trainable':>14}{'total':>14}"]
    lines += [f"{k:<{width}}{t:>14,}{n:>14,}" for k, (t, n) in rows.items()]
    totals = parameter_totals(model)
    lines.append(f"{'TOTAL':<{width}}{totals['live_trainable']:>14,}{totals['total']:>14,}")
    return lines
