"""AVS (S4, MS3) and AVQA as supervised *task runs* (the calls of ``avfewshot/supervised/runs.py``).

This module holds the stand-in fast path (``model.encoder=standin``): the heads read the frozen tiny stand-in
encoder (``standin.py``), computed once per split, and only the head trains. The default task runs, on the
adapted Swin-V2 + HTS-AT encoder, are ``adapted_runs.py``, whose ``build_head_task_run`` picks one.
AVQA's grounding pre-stage is the first ``grounding_epochs`` epochs: the match term only (the answer path
gets no gradient), then both terms on the same head; selection starts after the pre-stage.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch
from torch import nn

from ..data.facts import AVS_META_FILES
from ..metrics import avqa_accuracy, avs_evaluate, avs_fscore_dataset
from .standin import STANDIN_AUDIO_DIM, STANDIN_STAGE_DIMS, StandInAudio, StandInVisual

AVS_CLIPS_PER_BATCH = 4  # the released test loop's batch (the F-score depends on it, docs/supervised_heads.md §3)


class HeadModel(nn.Module):
    """A head with the Method contract's trainable-state calls (the stand-in encoder is not part of it)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def trainable_parameters(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_trainable_state(self, state: Dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)


def _to(batch: dict, device: Optional[torch.device]) -> dict:
    if device is None or device.type == "cpu":
        return batch
    move = lambda v: v.to(device) if torch.is_tensor(v) else v  # noqa: E731
    return {k: [move(x) for x in v] if isinstance(v, list) else move(v) for k, v in batch.items()}


class AVSTaskRun:
    main_metric = "miou"
    first_selectable_epoch = 0

    def __init__(self, root: Path, subset: str, cfg) -> None:
        from .avs_decoder import AVSDecoder, AVSDecoderConfig
        from .tiny import avs_split

        self.subset = subset
        seed = cfg.model.standin_seed
        visual, audio = StandInVisual(seed=seed), StandInAudio(seed=seed)
        with torch.no_grad():
            self.data = {split: avs_split(root, subset, split, visual, audio) for split in ("train", "val", "test")}
        self.counts = {split: int(d["audio"].shape[0]) for split, d in self.data.items()}
        self.data_files = [Path(root) / AVS_META_FILES[subset]]
        self.batch_size, self.eval_batch_size = cfg.train.batch_size, cfg.train.eval_batch_size
        self.device: Optional[torch.device] = None
        torch.manual_seed(cfg.seed)
        self.model = HeadModel(AVSDecoder(AVSDecoderConfig.tiny(
            STANDIN_STAGE_DIMS, STANDIN_AUDIO_DIM, sizes=(8, 4, 2, 1), channels=8, audio_channels=8, out_mid=8,
            out_low=4, gamma=0.05 if subset == "s4" else 0.1)))

    def _batch(self, data: dict, idx: torch.Tensor) -> dict:
        frames = (idx[:, None] * 5 + torch.arange(5)).reshape(-1)
        return _to({"maps": [m[frames] for m in data["maps"]], "audio": data["audio"][idx], "masks": data["masks"][idx]},
                   self.device)

    def train_batches(self, seed: int) -> Iterable[dict]:
        order = np.random.default_rng(seed).permutation(self.counts["train"])
        for start in range(0, len(order), self.batch_size):
            yield self._batch(self.data["train"], torch.as_tensor(order[start : start + self.batch_size]))

    def step(self, batch: dict, epoch: int):
        from .avs_losses import ms3_loss, s4_loss

        logits, v_maps, a_emb = self.model.head(batch["maps"], batch["audio"])
        target = batch["masks"]
        if self.subset == "s4":  # S4 training has the first frame's mask only
            loss = s4_loss(logits, target[:, :1])
        else:
            loss = ms3_loss(logits, target.reshape(-1, *target.shape[-2:]), v_maps, a_emb)
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def _logits(self, split: str) -> torch.Tensor:
        self.model.eval()
        n, out = self.counts[split], []
        for start in range(0, n, self.eval_batch_size):
            batch = self._batch(self.data[split], torch.arange(start, min(n, start + self.eval_batch_size)))
            out.append(self.model.head(batch["maps"], batch["audio"])[0][:, 0].float().cpu())
        return torch.cat(out)

    def _scores(self, logits: torch.Tensor, split: str) -> Dict[str, float]:
        masks = self.data[split]["masks"].reshape(-1, *logits.shape[-2:])
        official = avs_evaluate(logits, masks, clips_per_batch=AVS_CLIPS_PER_BATCH)
        return {"miou": official.miou, "f_score": official.f_score,
                "f_score_dataset": float(avs_fscore_dataset(logits, masks)), "num_clips": self.counts[split]}

    def evaluate(self, split: str) -> Dict[str, float]:
        return self._scores(self._logits(split), split)

    def baselines(self, split: str) -> Dict[str, Dict[str, float]]:
        masks = self.data[split]["masks"]
        empty = torch.full((masks.shape[0] * masks.shape[1], *masks.shape[-2:]), -20.0)
        return {"all_background": self._scores(empty, split)}


class AVQAScores:
    """Per-type accuracy of answer predictions and the majority-answer baseline, for task runs holding
    ``data[split]`` (``answers``, ``types``) and ``counts[split]``."""

    def _scores(self, pred: np.ndarray, split: str) -> Dict[str, float]:
        data = self.data[split]
        return {**avqa_accuracy(pred, data["answers"].numpy(), data["types"]), "num_questions": self.counts[split]}

    def baselines(self, split: str) -> Dict[str, Dict[str, float]]:
        majority = Counter(self.data["train"]["answers"].tolist()).most_common(1)[0][0]
        return {"majority": self._scores(np.full(self.counts[split], majority), split)}


class AVQATaskRun(AVQAScores):
    main_metric = "Overall"

    def __init__(self, root: Path, cfg) -> None:
        from ..data.avqa import read_vocab
        from .st_avqa import STAVQAConfig, STAVQAHead
        from .tiny import avqa_split

        seed = cfg.model.standin_seed
        visual, audio = StandInVisual(seed=seed), StandInAudio(seed=seed)
        qwords, awords = read_vocab(kind="question"), read_vocab(kind="answer")
        qvocab, avocab = {w: i for i, w in enumerate(qwords)}, {w: i for i, w in enumerate(awords)}
        with torch.no_grad():
            self.data = {s: avqa_split(root, s, visual, audio, qvocab, avocab) for s in ("train", "val", "test")}
        self.counts = {split: int(len(d["answers"])) for split, d in self.data.items()}
        self.data_files = [Path(root) / f"avqa-{s}.json" for s in ("train", "val", "test")]
        self.batch_size, self.eval_batch_size = cfg.train.batch_size, cfg.train.eval_batch_size
        self.grounding_epochs = cfg.model.grounding_epochs
        self.first_selectable_epoch = self.grounding_epochs
        self.device: Optional[torch.device] = None
        torch.manual_seed(cfg.seed)
        self.model = HeadModel(STAVQAHead(STAVQAConfig.tiny(STANDIN_STAGE_DIMS[-1], STANDIN_AUDIO_DIM, len(qwords),
                                                            len(awords))))

    def _batch(self, data: dict, idx: torch.Tensor, rng: np.random.Generator) -> dict:
        from .tiny import negatives

        videos = data["video"][idx]
        return _to({"visual": data["visual"][videos], "negatives": negatives(data, videos, rng),
                    "audio": data["audio"][videos], "tokens": data["tokens"][idx], "answers": data["answers"][idx]},
                   self.device)

    def train_batches(self, seed: int) -> Iterable[dict]:
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.counts["train"])
        for start in range(0, len(order), self.batch_size):
            yield self._batch(self.data["train"], torch.as_tensor(order[start : start + self.batch_size]), rng)

    def step(self, batch: dict, epoch: int):
        from .st_avqa import avqa_loss

        out = self.model.head(batch["visual"], batch["negatives"], batch["audio"], batch["tokens"])
        weight = 0.0 if epoch < self.grounding_epochs else 1.0  # the grounding pre-stage: matching only
        loss = avqa_loss(out, batch["answers"], answer_weight=weight)
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def evaluate(self, split: str) -> Dict[str, float]:
        self.model.eval()
        rng = np.random.default_rng(0)  # the negatives do not enter the answer; fixed for reproducibility
        n, preds = self.counts[split], []
        for start in range(0, n, self.eval_batch_size):
            batch = self._batch(self.data[split], torch.arange(start, min(n, start + self.eval_batch_size)), rng)
            out = self.model.head(batch["visual"], batch["negatives"], batch["audio"], batch["tokens"])
            preds.append(out["answer"].argmax(-1).cpu())
        return self._scores(torch.cat(preds).numpy(), split)
