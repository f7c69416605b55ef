"""The tiny supervised configuration trains on the synthetic AVE / LLP demo data (real mp4 media, official
annotation formats) and beats the majority-class baseline on the validation split."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avfewshot.data.dataset import collate_clips
from avfewshot.data.synth import ensure_demo
from avfewshot.supervised.ave import SupervisedAVE, SupervisedAVEConfig, evaluate_ave, majority_segment_accuracy
from avfewshot.supervised.avvp import (DenseLabels, SupervisedAVVP, SupervisedAVVPConfig, collate_dense,
                                       evaluate_avvp, trivial_avvp_baselines)
from avfewshot.supervised.data import SegmentSubset, build_datasets
from avfewshot.supervised.loop import fit
from avfewshot.supervised.presets import backbone_size

pytestmark = pytest.mark.slow

SECONDS = (1, 6)  # T = 2 segments of every 10-s demo clip: the tiny configuration's shape
EPOCHS_AVE, LR_AVE = 4, 3e-3  # measured: val accuracy 46 % (majority) -> 62 % after epoch 2, 74 % after epoch 3
LR_AVVP = 5e-3


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def loaders(dataset, batch_size, collate, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lambda: DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=g)


def test_tiny_ave_beats_the_majority_class():
    datasets = build_datasets("ave", ensure_demo("ave"), backbone_size("tiny"), splits=("train", "val"))
    train, val = (SegmentSubset(datasets[s], SECONDS) for s in ("train", "val"))
    val_batches = list(DataLoader(val, batch_size=16, collate_fn=collate_clips))
    train_labels = np.stack([train[i]["segment_labels"].numpy() for i in range(len(train))])
    val_labels = np.concatenate([b["segment_labels"].numpy() for b in val_batches])
    majority = majority_segment_accuracy(train_labels, val_labels)
    torch.manual_seed(0)
    model = SupervisedAVE(SupervisedAVEConfig(size="tiny", segments=len(SECONDS)))
    result = fit(model, loaders(train, 8, collate_clips), lambda: evaluate_ave(model, val_batches), "accuracy",
                 epochs=EPOCHS_AVE, lr=LR_AVE, step_size=100)
    final = evaluate_ave(model, val_batches)
    assert final["accuracy"] == pytest.approx(result.best_metric)  # the best epoch's state was restored
    assert result.best_metric > majority + 10, (result.history, majority)


def test_tiny_avvp_trains_and_evaluates_on_the_dense_labels():
    """End to end on synthetic LLP: weak-label training lowers the loss, the dense evaluation runs.

    Not asserted: beating the trivial predictors. In a CPU-minutes budget (up to 20 epochs of T = 2,
    lr 1e-3 to 1e-2) the MGN head stayed input-independent (video-level argmax = the majority class,
    no probability >= 0.5, so segment Type@AV = the empty predictor's 35.8 %); the head alone does learn
    separable inputs (tests/test_supervised_heads.py).
    """
    datasets = build_datasets("llp", ensure_demo("llp"), backbone_size("tiny"), splits=("train", "val"))
    train = SegmentSubset(datasets["train"], SECONDS)
    val = SegmentSubset(DenseLabels(datasets["val"]), SECONDS)
    val_batches = list(DataLoader(val, batch_size=16, collate_fn=collate_dense))
    train_labels = np.stack([datasets["train"][i]["labels"].numpy() for i in range(len(datasets["train"]))])
    baselines = trivial_avvp_baselines(train_labels, np.concatenate([b["dense_audio"].numpy() for b in val_batches]),
                                       np.concatenate([b["dense_visual"].numpy() for b in val_batches]))
    assert baselines["empty"]["segment_type_at_av"] > baselines["majority"]["segment_type_at_av"] > 0
    torch.manual_seed(0)
    model = SupervisedAVVP(SupervisedAVVPConfig(size="tiny", segments=len(SECONDS)))
    result = fit(model, loaders(train, 8, collate_dense), lambda: evaluate_avvp(model, val_batches),
                 "segment_type_at_av", epochs=2, lr=LR_AVVP, step_size=100)
    first, second = result.history
    assert second["train_loss"] < first["train_loss"] - 0.3
    assert second["num_clips"] == len(val)
    for key in ("segment_audio", "segment_visual", "segment_audio_visual", "segment_type_at_av", "event_event_at_av"):
        assert 0.0 <= second[key] <= 100.0
