"""The demo towers: the tiny CLIP and CLAP pretrained contrastively on the synthetic concept world.

Built on first use into ``paths.built_weights_dir()`` and saved in the released layouts (an open_clip
state dict; a CLAP ``{"state_dict": {"module.…": …}}`` file), so the demo loads them through the same
checkpoint code as real weights (``model.clip_weights=demo``, ``model.clap_weights=demo``).

Deterministic for a seed: one fixed thread count while training, a fixed pool of examples drawn from
one numpy generator, and ``torch.save`` into memory (the archive's inner folder name is fixed) written
atomically; the zip entries carry no timestamps. ``BUILD_VERSION`` is part of the cache check, so a
change of recipe rebuilds.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .. import paths
from . import demo_world as world
from . import specs

log = logging.getLogger("avfewshot")

BUILD_VERSION = 2
DEMO_SEED = 0
THREADS = 1  # fixed, so float reductions (and the files) do not depend on the core count; fastest on a shared machine
CLIP_ARCH, CLAP_ARCH = "tiny", "tiny"
MANIFEST = "demo-towers.json"
_LOCK = threading.Lock()


# -- the recipe --------------------------------------------------------------------------------
# The lower layers keep their seeded random weights (random features already separate colours and
# tones); the upper layers, the heads and the text towers are trained. Frozen-prefix outputs are
# computed once for a fixed pool of examples, so a step costs only the trained part (<= 60 s on 2 cores).
STEPS = {"clip": 100, "clap": 200}
BATCH = 48
POOL_PER_CONCEPT = {"clip": 12, "clap": 12}
LR = {"clip": 3e-3, "clap": 3e-3}
# The temperature stays at CLIP's initial 1/0.07: a learned one grows until nearly parallel text features
# separate the classes, and the class prompts' features must differ in direction (max cosine < 0.9).
FROZEN_CLIP_BLOCKS = 2  # of the image tower's 4
FROZEN_CLAP_STAGES = 2  # of HTS-AT's 4 (with the patch embedding and bn0)


@contextlib.contextmanager
def _fixed_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cosine_lr(optimizer, base: float, step: int, total: int, warmup: int = 20) -> None:
    lr = base * (step + 1) / warmup if step < warmup else base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    for group in optimizer.param_groups:
        group["lr"] = lr


def _contrastive(features: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Both directions of CLIP's loss with every caption of the batch's concepts as a class:
    media -> its concept's caption, and each present caption -> the mean over its media."""
    logits = scale.exp() * F.normalize(features, dim=-1) @ F.normalize(text, dim=-1).t()
    media_to_text = F.cross_entropy(logits, labels)
    present = torch.unique(labels)
    target = (labels[None, :] == present[:, None]).float()
    target = target / target.sum(dim=1, keepdim=True)
    text_to_media = -(target * F.log_softmax(logits.t()[present], dim=1)).sum(dim=1).mean()
    return 0.5 * (media_to_text + text_to_media)


def _caption_pair_loss(first: torch.Tensor, second: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Two captions of each concept are positives, other concepts negatives: keeps every concept's text
    feature apart from the others even where the pictures or sounds of two concepts look alike."""
    logits = scale.exp() * F.normalize(first, dim=-1) @ F.normalize(second, dim=-1).t()
    target = torch.arange(first.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def _caption_tables(concepts, templates) -> List[List[str]]:
    return [world.captions(c, templates) for c in concepts]


def _pick_captions(tables: List[List[str]], rng: np.random.Generator) -> List[str]:
    """One caption per concept; the default template's first name half of the time."""
    return [table[0] if rng.random() < 0.5 else table[int(rng.integers(0, len(table)))] for table in tables]


# -- CLIP --------------------------------------------------------------------------------------
def _clip_text(model, ids: torch.Tensor) -> torch.Tensor:
    """open_clip's text forward on the first tokens (up to the longest caption): the attention is causal and the
    features are read at the end token, so the later (padding) positions never change them."""
    from .clip_blocks import transformer_forward

    length = ids.shape[1]
    x = model.token_embedding(ids) + model.positional_embedding[:length]
    x = transformer_forward(model.transformer, x, model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
    return x @ model.text_projection


def _train(name: str, params, step_loss, steps: int) -> None:
    """AdamW with warm-up and cosine decay on ``step_loss(step) -> loss``."""
    params = list(params)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=LR[name], weight_decay=0.0)
    for step in range(steps):
        _cosine_lr(optimizer, LR[name], step, steps)
        loss = step_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            log.info("demo %s step %d: loss %.3f", name.upper(), step, loss.item())


def train_clip(seed: int) -> Dict[str, torch.Tensor]:
    from open_clip.model import CLIP

    from .clip_blocks import block_forward
    from .clip_towers import IMAGE_NORMS
    from .frozen import seeded_init
    from .tokenizers import ClipTokenizer

    rng = np.random.default_rng([seed, 1])
    concepts = world.world_concepts()
    cfg = specs.clip_arch(CLIP_ARCH).model_cfg()
    with seeded_init(seed):
        model = CLIP(**cfg)
    model.float().train(False).requires_grad_(False)  # no dropout: a pure function of the weights
    size = int(cfg["vision_cfg"]["image_size"])
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGE_NORMS["clip"])
    labels = _pool_labels(len(concepts), POOL_PER_CONCEPT["clip"])
    pixels = np.stack([world.render_image(concepts[c], concepts[world.distractor(rng, c, len(concepts))], rng, size)
                       for c in labels])
    pixels = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    visual = model.visual
    blocks = visual.transformer.resblocks
    with torch.no_grad():
        tokens = visual._embeds(pixels)
        for block in blocks[:FROZEN_CLIP_BLOCKS]:
            tokens = block_forward(block, tokens)
    tokenizer = ClipTokenizer(int(cfg["text_cfg"]["context_length"]))
    tables = _caption_tables(concepts, world.IMAGE_TEMPLATES)
    targets = torch.from_numpy(labels)

    def step_loss(step: int) -> torch.Tensor:
        batch = torch.from_numpy(rng.choice(len(labels), size=BATCH, replace=False))
        x = tokens[batch]
        for block in blocks[FROZEN_CLIP_BLOCKS:]:
            x = block_forward(block, x)
        pooled, _ = visual._pool(x)
        ids = tokenizer(_pick_captions(tables, rng) + _pick_captions(tables, rng))
        text = _clip_text(model, ids[:, : int((ids != 0).sum(dim=1).max())])
        first, second = text[: len(concepts)], text[len(concepts):]
        return (_contrastive(pooled @ visual.proj, first, targets[batch], model.logit_scale)
                + _caption_pair_loss(first, second, model.logit_scale))

    trained = [*blocks[FROZEN_CLIP_BLOCKS:].parameters(), *visual.ln_post.parameters(), visual.proj,
               *model.transformer.parameters(), *model.ln_final.parameters(), model.positional_embedding,
               model.text_projection]
    _train("clip", trained, step_loss, STEPS["clip"])
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def train_clap(seed: int) -> Dict[str, torch.Tensor]:
    from .checkpoints import ResolvedWeights
    from .clap_import import import_clap_module
    from .clap_towers import AudioTower, ClapBuild, ClapModel, ClapTextTower, mel_matrix
    from .frozen import seeded_init
    from .tokenizers import build_clap_tokenizer

    rng = np.random.default_rng([seed, 2])
    concepts = world.world_concepts()
    arch = specs.clap_arch(CLAP_ARCH)
    frontend = specs.resolve_frontend("native", arch)
    import_clap_module()
    with seeded_init(seed):
        model = ClapModel(arch, frontend)
    with torch.no_grad():
        model.audio_branch.logmel_extractor.melW.copy_(mel_matrix(frontend, "slaney"))
    build = ClapBuild(model, arch, frontend, ResolvedWeights("none", None), "slaney")
    audio, text = AudioTower(build), ClapTextTower(build, build_clap_tokenizer(arch.text, None))
    labels = _pool_labels(len(concepts), POOL_PER_CONCEPT["clap"])
    waves = np.stack([world.render_sound(concepts[c], concepts[world.distractor(rng, c, len(concepts))], rng,
                                         frontend.sample_rate) for c in labels])
    branch = model.audio_branch
    with torch.no_grad():
        logmel = branch.logmel_extractor(audio.power_spectrogram(audio.fill(torch.from_numpy(waves))))
        # bn0 normalises each mel bin: set it from the world's statistics (as a trained CLAP's would be)
        branch.bn0.running_mean.copy_(logmel.mean(dim=(0, 1, 2)))
        branch.bn0.running_var.copy_(logmel.var(dim=(0, 1, 2)))
        tokens = audio.embed(audio.frontend(torch.from_numpy(waves)))
        for s in range(FROZEN_CLAP_STAGES):
            tokens = audio.run_stage(s, tokens)
    tables = _caption_tables(concepts, world.SOUND_TEMPLATES)
    targets = torch.from_numpy(labels)

    def step_loss(step: int) -> torch.Tensor:
        batch = torch.from_numpy(rng.choice(len(labels), size=BATCH, replace=False))
        x = tokens[batch]
        for s in range(FROZEN_CLAP_STAGES, len(audio.stages)):
            x = audio.run_stage(s, x)
        ids, mask = text.tokenize(_pick_captions(tables, rng) + _pick_captions(tables, rng))
        length = int(mask.sum(dim=1).max())
        both = text(ids[:, :length], mask[:, :length])
        first, second = both[: len(concepts)], both[len(concepts):]
        return (_contrastive(audio.project(audio.head(x)), first, targets[batch], model.logit_scale_a)
                + _caption_pair_loss(first, second, model.logit_scale_a))

    trained = [*(p for stage in audio.stages[FROZEN_CLAP_STAGES:] for p in stage.parameters()),
               *branch.norm.parameters(), *model.audio_projection.parameters(),
               *model.text_branch.parameters(), *model.text_projection.parameters()]
    _train("clap", trained, step_loss, STEPS["clap"])
    with torch.no_grad():
        model.logit_scale_t.copy_(model.logit_scale_a)
    return {"module." + k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _pool_labels(num_concepts: int, per_concept: int) -> np.ndarray:
    return np.repeat(np.arange(num_concepts), per_concept)


# -- files ------------------------------------------------------------------------------------
def checkpoint_bytes(obj) -> bytes:
    """``torch.save`` into memory: the archive's inner folder is always ``archive`` (not the file's name)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def demo_files() -> Dict[str, str]:
    """{"clip": file name, "clap": file name} from the checkpoint table (the entries marked ``built: demo``)."""
    cat = specs.catalogue()
    clip = next(e for per_arch in cat.clip_checkpoints.values() for e in per_arch.values() if e.built == "demo")
    clap = next(cat.clap_checkpoints.get(n) for n in cat.clap_checkpoints.names() if cat.clap_checkpoints.get(n).built == "demo")
    return {"clip": clip.files[0], "clap": clap.file}


def build_demo_towers(folder: Path, seed: int = DEMO_SEED) -> Dict[str, Path]:
    """Pretrain both towers and write their checkpoint files (and a manifest) into ``folder``."""
    names = demo_files()
    started = time.perf_counter()
    with _fixed_threads(THREADS), torch.random.fork_rng(devices=[]):
        clip_state = train_clip(seed)
        clap_state = train_clap(seed)
    out = {"clip": folder / names["clip"], "clap": folder / names["clap"]}
    write_atomic(out["clip"], checkpoint_bytes(clip_state))
    write_atomic(out["clap"], checkpoint_bytes({"state_dict": clap_state, "epoch": 1}))
    manifest = {"version": BUILD_VERSION, "seed": seed, "torch": torch.__version__, "files": names,
                "seconds": round(time.perf_counter() - started, 1)}
    write_atomic(folder / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    log.info("built the demo towers in %.1f s into %s", manifest["seconds"], folder)
    return out


def demo_towers_current(folder: Optional[Path] = None, seed: int = DEMO_SEED) -> bool:
    folder = folder or paths.built_weights_dir()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("version") == BUILD_VERSION and manifest.get("seed") == seed
            and manifest.get("torch") == torch.__version__
            and all((folder / name).is_file() for name in demo_files().values()))


def ensure_demo_towers(seed: int = DEMO_SEED) -> Path:
    """The folder holding the demo tower files, pretrained on first use (about a minute on 2 cores)."""
    folder = paths.built_weights_dir()
    with _LOCK:
        if not demo_towers_current(folder, seed):
            log.info("pretraining the demo towers on the synthetic concept world (first use) into %s", folder)
            build_demo_towers(folder, seed)
    return folder


def needs_demo_towers(clip_weights: Optional[str], clap_weights: Optional[str], clip_arch: str) -> bool:
    clip = specs.clip_checkpoint(clip_arch, str(clip_weights)) if clip_weights else None
    clap = specs.clap_checkpoint(str(clap_weights)) if clap_weights else None
    return bool((clip is not None and clip.built == "demo") or (clap is not None and clap.built == "demo"))
