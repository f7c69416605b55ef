"""AVS (S4, MS3) and AVQA task runs on the adapted Swin-V2 + HTS-AT encoder (the calls of ``supervised/runs.py``).

The default of ``avfewshot supervised --task avs_s4|avs_ms3|avqa`` (``model.encoder=adapted``): the task models of
``adapted.py`` read media (``media.py``; decoded once and kept for the small synthetic demos) and train units and
head end to end. AVQA batches are ``batch_size`` questions, grouped by video (a shuffled video order, each video's
questions together) so that questions of one video share its encoder pass; the first ``grounding_epochs`` epochs
are the grounding pre-stage (match term only) and selection starts after them. Negatives: for every frame of a
question's video, a random frame of a *different* video of the split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch

from ..data.facts import AVQA_SEGMENTS, AVS_META_FILES
from ..metrics import avs_evaluate, avs_fscore_dataset
from ..supervised.augment import AugmentConfig
from ..supervised.presets import backbone_size
from .media import MediaStore, avqa_frame, avqa_video, avs_item, stack
from .runs import AVS_CLIPS_PER_BATCH, AVQAScores, _to

SPLITS = ("train", "val", "test")


class AdaptedAVSTaskRun:
    main_metric = "miou"
    first_selectable_epoch = 0

    def __init__(self, root: Path, subset: str, cfg) -> None:
        from ..data.avsbench import read_avs_meta
        from .adapted import SupervisedAVS, SupervisedAVSConfig

        m = cfg.model
        self.subset = subset
        self.model = SupervisedAVS(SupervisedAVSConfig(
            size=m.size, preset=subset, visual_weights=m.visual_weights, audio_weights=m.audio_weights,
            ungated_audio=m.ungated_audio, train_htsat=m.train_htsat, augment=AugmentConfig(spec_augment=m.spec_augment)))
        self.clips = {split: read_avs_meta(root, subset, split) for split in SPLITS}
        self.counts = {split: len(clips) for split, clips in self.clips.items()}
        size = backbone_size(m.size)
        mask = self.model.mask_size
        self.store = MediaStore(lambda clip: avs_item(root, clip, size.visual.img_size, size.audio.sample_rate, mask),
                                memoise=cfg.demo)
        self.data_files = [Path(root) / AVS_META_FILES[subset]]
        self.batch_size, self.eval_batch_size = cfg.train.batch_size, cfg.train.eval_batch_size
        self.device: Optional[torch.device] = None

    def _batch(self, clips) -> dict:
        items = [self.store[c] for c in clips]
        return _to({key: stack(items, key) for key in ("frames", "audio", "masks")}, self.device)

    def train_batches(self, seed: int) -> Iterable[dict]:
        clips = self.clips["train"]
        order = np.random.default_rng(seed).permutation(len(clips))
        for start in range(0, len(order), self.batch_size):
            yield self._batch([clips[i] for i in order[start : start + self.batch_size]])

    def step(self, batch: dict, epoch: int):
        return self.model.loss(batch, self.model(batch), epoch)

    def _masks(self, split: str) -> torch.Tensor:
        return torch.cat([self.store[c]["masks"] for c in self.clips[split]])

    @torch.no_grad()
    def evaluate(self, split: str) -> Dict[str, float]:
        self.model.eval()
        clips, out = self.clips[split], []
        for start in range(0, len(clips), self.eval_batch_size):
            logits = self.model(self._batch(clips[start : start + self.eval_batch_size]))[0]
            out.append(logits[:, 0].float().cpu())
        return self._scores(torch.cat(out), split)

    def _scores(self, logits: torch.Tensor, split: str) -> Dict[str, float]:
        masks = self._masks(split)
        official = avs_evaluate(logits, masks, clips_per_batch=AVS_CLIPS_PER_BATCH)
        return {"miou": official.miou, "f_score": official.f_score,
                "f_score_dataset": float(avs_fscore_dataset(logits, masks)), "num_clips": self.counts[split]}

    def baselines(self, split: str) -> Dict[str, Dict[str, float]]:
        masks = self._masks(split)
        return {"all_background": self._scores(torch.full(masks.shape, -20.0), split)}


class AdaptedAVQATaskRun(AVQAScores):
    main_metric = "Overall"

    def __init__(self, root: Path, cfg) -> None:
        from ..data.avqa import encode_answer, encode_question, read_avqa_questions, read_vocab
        from .adapted import SupervisedAVQA, SupervisedAVQAConfig

        m = cfg.model
        qwords, awords = read_vocab(kind="question"), read_vocab(kind="answer")
        qvocab, avocab = {w: i for i, w in enumerate(qwords)}, {w: i for i, w in enumerate(awords)}
        self.data = {}
        for split in SPLITS:
            questions = read_avqa_questions(Path(root) / f"avqa-{split}.json").questions
            videos = sorted({q.video_id for q in questions})
            position = {vid: i for i, vid in enumerate(videos)}
            self.data[split] = {
                "videos": videos, "video": np.asarray([position[q.video_id] for q in questions]),
                "tokens": torch.as_tensor([encode_question(q, qvocab) for q in questions]),
                "answers": torch.as_tensor([encode_answer(q, avocab) for q in questions]),
                "types": [(q.modality, q.subtype) for q in questions],
            }
        self.counts = {split: len(d["answers"]) for split, d in self.data.items()}
        self.data_files = [Path(root) / f"avqa-{s}.json" for s in SPLITS]
        self.batch_size, self.eval_batch_size = cfg.train.batch_size, cfg.train.eval_batch_size
        self.first_selectable_epoch = m.grounding_epochs
        self.device: Optional[torch.device] = None
        size = backbone_size(m.size)
        self.root, self.image_size = root, size.visual.img_size
        self.store = MediaStore(lambda vid: avqa_video(root, vid, size.visual.img_size, size.audio.sample_rate),
                                memoise=cfg.demo)
        self.model = SupervisedAVQA(SupervisedAVQAConfig(
            size=m.size, visual_weights=m.visual_weights, audio_weights=m.audio_weights, vocab_size=len(qwords),
            answers=len(awords), negatives=m.negatives, grounding_epochs=m.grounding_epochs,
            ungated_audio=m.ungated_audio, augment=AugmentConfig(spec_augment=m.spec_augment)))

    def _batch(self, split: str, questions: np.ndarray, rng: np.random.Generator) -> dict:
        data = self.data[split]
        positions, question_video = np.unique(data["video"][questions], return_inverse=True)
        videos = [self.store[data["videos"][p]] for p in positions]
        negatives = [self._negative_frames(split, int(p), rng) for p in positions]
        index = torch.as_tensor(questions)
        return _to({"frames": stack(videos, "frames"), "audio": stack(videos, "audio"),
                    "negative_frames": torch.stack(negatives), "question_video": torch.as_tensor(question_video),
                    "tokens": data["tokens"][index], "answers": data["answers"][index]}, self.device)

    def _negative_frames(self, split: str, position: int, rng: np.random.Generator) -> torch.Tensor:
        """For each of the video's frames, a random frame of another video of the split (never the same video)."""
        videos = self.data[split]["videos"]
        if len(videos) < 2:
            from ..errors import UserError

            raise UserError(f"AVQA {split}: negatives need at least two videos, the split has {len(videos)}")
        frames = []
        for _ in range(AVQA_SEGMENTS):
            other = int(rng.integers(0, len(videos) - 1))
            other += other >= position  # uniform over the other videos
            index = int(rng.integers(0, AVQA_SEGMENTS))
            if self.store.memoise:
                frames.append(self.store[videos[other]]["frames"][index])
            else:  # decode the one frame, not the other video's ten
                frames.append(avqa_frame(self.root, videos[other], index, self.image_size))
        return torch.stack(frames)

    def _grouped(self, split: str, rng: Optional[np.random.Generator]) -> List[int]:
        """Question indices grouped by video: shuffled (videos, then questions within each) when ``rng`` is given."""
        video = self.data[split]["video"]
        groups = [np.flatnonzero(video == p) for p in range(len(self.data[split]["videos"]))]
        if rng is None:
            return [int(i) for g in groups for i in g]
        return [int(i) for p in rng.permutation(len(groups)) for i in rng.permutation(groups[p])]

    def train_batches(self, seed: int) -> Iterable[dict]:
        rng = np.random.default_rng(seed)
        order = self._grouped("train", rng)
        for start in range(0, len(order), self.batch_size):
            yield self._batch("train", np.asarray(order[start : start + self.batch_size]), rng)

    def step(self, batch: dict, epoch: int):
        return self.model.loss(batch, self.model(batch), epoch)

    @torch.no_grad()
    def evaluate(self, split: str) -> Dict[str, float]:
        self.model.eval()
        rng = np.random.default_rng(0)  # the negatives do not enter the answer; fixed for reproducibility
        order = self._grouped(split, None)
        preds = np.zeros(self.counts[split], dtype=np.int64)
        for start in range(0, len(order), self.eval_batch_size):
            chunk = np.asarray(order[start : start + self.eval_batch_size])
            preds[chunk] = self.model(self._batch(split, chunk, rng))["answer"].argmax(-1).cpu().numpy()
        return self._scores(preds, split)


def build_head_task_run(task: str, root: Path, cfg):
    """The adapted encoder's task run (``model.encoder=adapted``, the default) or the stand-in's (``standin``)."""
    if task not in ("avs_s4", "avs_ms3", "avqa"):
        raise ValueError(f"not an AVS / AVQA task: {task!r}")
    if cfg.model.encoder == "adapted":
        return AdaptedAVQATaskRun(root, cfg) if task == "avqa" else AdaptedAVSTaskRun(root, task.split("_")[1], cfg)
    from .runs import AVQATaskRun, AVSTaskRun

    if task == "avqa":
        return AVQATaskRun(root, cfg)
    return AVSTaskRun(root, task.split("_")[1], cfg)
