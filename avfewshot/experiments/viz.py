"""Pictures researchers look at: DG-SCT's attention maps (the paper's Fig. 3) and t-SNE of the
audio and visual features with and without the adapters (the paper's Fig. 5).

Both take a built ``dgsct`` method (``method_from_run`` rebuilds one from a finished run folder)
and a dataset from the engine, and return a matplotlib Figure (Agg canvas, no pyplot state).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np


def method_from_run(run_dir, data_root: Optional[str] = None):
    """(method, test dataset, class names) of a finished run folder (config.yaml + trainable.pt)."""
    from ..engine.build import rebuild_run

    run = rebuild_run(run_dir, data="eval", data_root=data_root)
    return run.method, run.data.test, run.data.class_names


def _encoders(method):
    encoders = getattr(method, "encoders", None)
    if encoders is None or not hasattr(encoders, "units"):
        from ..errors import UserError

        raise UserError(f"method {method.name!r} has no DG-SCT adapters to visualise; use a dgsct run")
    return encoders


def features(method, dataset, adapted: bool):
    """Clip-level (segment-mean) image and audio embeddings, with or without the adapters."""
    import torch

    images, audios, labels = [], [], []
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            if item is None:
                continue
            frames, wave = item["frames"], item["audio"]
            if adapted:
                out = _encoders(method)(frames, wave)
                img, aud = out.image, out.audio
            else:
                img, aud = method.backbone.image(frames), method.backbone.audio(wave)
            images.append(img.mean(0).numpy())
            audios.append(aud.mean(0).numpy())
            labels.append(int(np.argmax(item["labels"].numpy())))
    return np.stack(images), np.stack(audios), np.array(labels)


def tsne_figure(method, dataset, class_names: Sequence[str], seed: int = 0):
    from matplotlib.figure import Figure
    from sklearn.manifold import TSNE

    fig = Figure(figsize=(9, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    for col, adapted in enumerate((False, True)):
        img, aud, labels = features(method, dataset, adapted)
        for row, (name, x) in enumerate((("visual", img), ("audio", aud))):
            perplexity = max(2.0, min(30.0, (len(x) - 1) / 3))
            xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
            ax = axes[row][col]
            for c in np.unique(labels):
                ax.scatter(*xy[labels == c].T, s=18, label=class_names[c])
            ax.set_title(f"{name} features, {'with' if adapted else 'without'} DG-SCT adapters")
            ax.set_xticks([]), ax.set_yticks([])
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(4, len(names)), frameon=False)
    fig.suptitle("t-SNE of clip features (first label as colour)")
    return fig


def attention_figure(method, dataset, clips: Sequence[int], block: int = -1):
    """Audio-guided spatial attention over the frames, visual-guided time-frequency attention over the
    spectrogram tokens (HTS-AT's first-stage grid of the folded log-mel image), from the paired step
    ``block`` (default: the last) for the visual map, one row per clip, second 5 of each clip."""
    import torch
    from matplotlib.figure import Figure

    encoders = _encoders(method)
    units = encoders.units()
    visual_unit = units["visual_p1"][block] if "visual_p1" in units else None
    audio_unit = units["audio_p1"][0] if "audio_p1" in units else None  # the first stage: finest grid
    for unit in (visual_unit, audio_unit):
        if unit is not None:
            unit.record_maps = True
    fig = Figure(figsize=(10, 2.6 * len(clips)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(clips), 3))
    try:
        for row, index in enumerate(clips):
            item = dataset[index]
            with torch.no_grad():
                encoders(item["frames"], item["audio"])
            frame = item["frames"][4].permute(1, 2, 0).numpy()
            frame = (frame - frame.min()) / max(1e-6, frame.max() - frame.min())
            axes[row][0].imshow(frame)
            axes[row][0].set_title(f"{item['clip_id']} (second 5)")
            if visual_unit is not None and visual_unit.last_maps.spatial is not None:
                spatial = visual_unit.last_maps.spatial[4, 1:].numpy()  # patch tokens (CLS first)
                side = int(round(len(spatial) ** 0.5))
                axes[row][1].imshow(frame)
                axes[row][1].imshow(spatial.reshape(side, side), alpha=0.6, cmap="jet",
                                    extent=(0, frame.shape[1], frame.shape[0], 0), interpolation="bilinear")
                axes[row][1].set_title("audio-guided spatial attention")
            if audio_unit is not None and audio_unit.last_maps.spatial is not None:
                tf = audio_unit.last_maps.spatial[4].numpy()
                side = int(round(len(tf) ** 0.5))
                axes[row][2].imshow(tf.reshape(side, side).T, origin="lower", aspect="auto", cmap="magma")
                axes[row][2].set_title("visual-guided time-frequency attention")
            for ax in axes[row]:
                ax.set_xticks([]), ax.set_yticks([])
    finally:
        for unit in (visual_unit, audio_unit):
            if unit is not None:
                unit.record_maps = False
    return fig


def save(fig, out) -> Path:
    from ..engine.results import atomic_write

    out = Path(out)
    fmt = out.suffix.lstrip(".") or "png"
    atomic_write(out, lambda handle: fig.savefig(handle, format=fmt, dpi=120, bbox_inches="tight"))
    return out


def run_viz(kind: str, run_dir, out, clips: List[int], data_root: Optional[str] = None) -> Path:
    method, dataset, class_names = method_from_run(run_dir, data_root)
    if kind == "tsne":
        fig = tsne_figure(method, dataset, class_names)
    else:
        fig = attention_figure(method, dataset, clips or [0, 1])
    return save(fig, out)
