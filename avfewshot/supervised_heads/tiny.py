"""Tiny end-to-end runs of both heads on the synthetic roots, with the frozen stand-in encoder.

``run_tiny_avs`` trains the TPAVI decoder (S4 or MS3 loss) and ``run_tiny_avqa`` the ST-AVQA head (after
its grounding pre-stage); both evaluate on the synthetic test split with the official metrics and
return the trivial baseline's score beside the model's (all-background masks; the majority answer).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch.nn import functional as F

from ..data.avqa import encode_answer, encode_question, read_avqa_questions, read_vocab
from ..data.avsbench import load_avs_clip, read_avs_meta
from ..data.facts import AVQA_SEGMENTS
from ..metrics import avqa_accuracy, avs_evaluate
from .avs_decoder import AVSDecoder, AVSDecoderConfig
from .avs_losses import ms3_loss, s4_loss
from .negatives import sample_negatives
from .standin import STANDIN_AUDIO_DIM, STANDIN_STAGE_DIMS, StandInAudio, StandInVisual, frames_to_tensor
from .st_avqa import STAVQAConfig, STAVQAHead, avqa_loss, grounding_parameters, load_grounding

MASK_SIZE = 32  # the tiny decoder works on 8/4/2/1 grids -> 32^2 masks (cheap on a loaded 2-core CPU)
AVS_IMAGE = 32
AVQA_IMAGE = 64  # a 2 x 2 final map keeps left / right apart


def _avs_split(root, subset: str, split: str, visual: StandInVisual, audio: StandInAudio) -> Dict[str, object]:
    maps: List[List[torch.Tensor]] = [[] for _ in STANDIN_STAGE_DIMS]
    sounds, masks = [], []
    for clip in read_avs_meta(root, subset, split):
        data = load_avs_clip(root, clip)
        for i, m in enumerate(visual(frames_to_tensor(data["frames"], AVS_IMAGE))):
            maps[i].append(m)
        sounds.append(audio(data["audio"]))
        mask = torch.from_numpy(data["masks"])[:, None]
        masks.append(F.interpolate(mask, size=(MASK_SIZE, MASK_SIZE), mode="nearest")[:, 0])
    return {"maps": [torch.cat(m) for m in maps], "audio": torch.stack(sounds), "masks": torch.stack(masks)}


def run_tiny_avs(root, subset: str = "s4", epochs: int = 15, batch: int = 2, lr: float = 3e-3, seed: int = 0) -> Dict[str, float]:
    torch.manual_seed(seed)
    visual, audio = StandInVisual(seed=seed), StandInAudio(seed=seed)
    train = _avs_split(root, subset, "train", visual, audio)
    test = _avs_split(root, subset, "test", visual, audio)
    model = AVSDecoder(AVSDecoderConfig.tiny(STANDIN_STAGE_DIMS, STANDIN_AUDIO_DIM, sizes=(8, 4, 2, 1), channels=8, audio_channels=8, out_mid=8, out_low=4, gamma=0.05 if subset == "s4" else 0.1))
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    clips = train["audio"].shape[0]
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        model.train()
        order = rng.permutation(clips)
        for start in range(0, clips, batch):
            idx = torch.as_tensor(order[start : start + batch])
            frame_idx = (idx[:, None] * 5 + torch.arange(5)).reshape(-1)
            logits, v_maps, a_emb = model([m[frame_idx] for m in train["maps"]], train["audio"][idx])
            target = train["masks"][idx]  # (b, K, H, W)
            if subset == "s4":
                loss = s4_loss(logits, target[:, :1])
            else:
                loss = ms3_loss(logits, target.reshape(-1, MASK_SIZE, MASK_SIZE), v_maps, a_emb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = model(test["maps"], test["audio"])[0][:, 0]
    masks = test["masks"].reshape(-1, MASK_SIZE, MASK_SIZE)
    scores = avs_evaluate(logits, masks, clips_per_batch=4)
    baseline = avs_evaluate(torch.full_like(logits, -20.0), masks, clips_per_batch=4)
    return {"miou": scores.miou, "f_score": scores.f_score, "baseline_miou": baseline.miou, "baseline_f_score": baseline.f_score}


def _avqa_split(root, split: str, visual: StandInVisual, audio: StandInAudio, qvocab, avocab) -> Dict[str, object]:
    from PIL import Image

    questions = read_avqa_questions(Path(root) / f"avqa-{split}.json").questions
    videos = sorted({q.video_id for q in questions})
    finals, sounds = [], []
    for vid in videos:
        folder = Path(root) / "frames" / vid
        names = sorted(folder.glob("*.jpg"))
        picks = np.linspace(1, len(names), AVQA_SEGMENTS).astype(int) - 1
        frames = np.stack([np.asarray(Image.open(names[i]).convert("RGB")) for i in picks])
        finals.append(visual(frames_to_tensor(frames, AVQA_IMAGE))[-1])
        wave = np.load(Path(root) / "audio_wave" / f"{vid}.npy").reshape(AVQA_SEGMENTS, -1)
        sounds.append(audio(wave))
    position = {vid: i for i, vid in enumerate(videos)}
    return {
        "visual": torch.stack(finals), "audio": torch.stack(sounds), "videos": videos,
        "video": torch.as_tensor([position[q.video_id] for q in questions]),
        "tokens": torch.as_tensor([encode_question(q, qvocab) for q in questions]),
        "answers": torch.as_tensor([encode_answer(q, avocab) for q in questions]),
        "types": [(q.modality, q.subtype) for q in questions],
    }


def _negatives(data, video_idx: torch.Tensor, rng) -> torch.Tensor:
    picks = sample_negatives(data["videos"], AVQA_SEGMENTS, rng)
    out = [torch.stack([data["visual"][v, f] for v, f in picks[int(i)]]) for i in video_idx]
    return torch.stack(out)


def run_tiny_avqa(root, grounding_epochs: int = 5, epochs: int = 40, batch: int = 16, lr: float = 2e-3, seed: int = 0) -> Dict[str, object]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    visual, audio = StandInVisual(seed=seed), StandInAudio(seed=seed)
    qwords, awords = read_vocab(kind="question"), read_vocab(kind="answer")
    qvocab, avocab = {w: i for i, w in enumerate(qwords)}, {w: i for i, w in enumerate(awords)}
    train = _avqa_split(root, "train", visual, audio, qvocab, avocab)
    test = _avqa_split(root, "test", visual, audio, qvocab, avocab)
    config = STAVQAConfig.tiny(STANDIN_STAGE_DIMS[-1], STANDIN_AUDIO_DIM, len(qwords), len(awords))

    def fit(head: STAVQAHead, n_epochs: int, answer_weight: float) -> None:
        optimiser = torch.optim.Adam(head.parameters(), lr=lr)
        count = len(train["answers"])
        for _ in range(n_epochs):
            head.train()
            order = rng.permutation(count)
            for start in range(0, count, batch):
                idx = torch.as_tensor(order[start : start + batch])
                vids = train["video"][idx]
                out = head(train["visual"][vids], _negatives(train, vids, rng), train["audio"][vids], train["tokens"][idx])
                loss = avqa_loss(out, train["answers"][idx], answer_weight=answer_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

    grounding = STAVQAHead(config)
    fit(grounding, grounding_epochs, answer_weight=0.0)  # the grounding pre-stage: matching only
    head = STAVQAHead(config)
    load_grounding(head, grounding_parameters(grounding))
    fit(head, epochs, answer_weight=1.0)
    head.eval()
    with torch.no_grad():
        vids = test["video"]
        out = head(test["visual"][vids], _negatives(test, vids, rng), test["audio"][vids], test["tokens"])
    pred = out["answer"].argmax(-1).numpy()
    majority = Counter(train["answers"].tolist()).most_common(1)[0][0]
    truth = test["answers"].numpy()
    return {
        "accuracy": avqa_accuracy(pred, truth, test["types"]),
        "baseline": avqa_accuracy(np.full_like(truth, majority), truth, test["types"]),
    }
