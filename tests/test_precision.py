"""Precision plumbing: names and autocast, frozen towers stored in bf16, a bf16 DG-SCT step, meta builds."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot import precision as prec
from avfewshot.errors import UserError
from avfewshot.methods import build_method
from avfewshot.tasks import get_task

from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
CLASSES = ["dog bark", "Frying_(food)", "speech", "car"]
#: relative error of tower outputs with bf16 weights (autocast entered by the towers) against fp32, tiny towers
TOWER_BOUND = 3e-2
#: relative error of the fused logits / all trainable gradients of one bf16 DG-SCT step against fp32 (tiny
#: random towers, every gate opened to 0.5, so the units' bf16 deltas dominate the logits): measured 6.2e-2 /
#: 2.3e-2 with bf16 streams and the fused bottleneck's wide tensors in bf16 (its output as accurate as the
#: plain autocast path's, tests/test_precision_kernels.py); 3.8e-2 / 2.1e-2 with that kernel in fp32, 5.1e-2 /
#: 2.4e-2 with fp32 streams and that kernel in fp32. At initialisation (gates 0) the real-size model's
#: logits are 1.8e-2 off (``avfewshot bench dgsct``).
STEP_BOUND = 8e-2


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    with encoder_env(tmp_path_factory.mktemp("prec")):
        yield build_backbone(ModelConfig(**TINY)), build_backbone(ModelConfig(**TINY, frozen_dtype="bf16"))


def test_names_pairs_and_autocast_contexts():
    assert prec.dtype_of("bf16") is torch.bfloat16 and prec.name_of(torch.float16) == "fp16"
    assert prec.frozen_dtype_for("bf16") == "bf16" and prec.frozen_dtype_for("fp32") == "fp32"
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        prec.dtype_of("fp8")
    prec.check_precision_pair("bf16", "fp32")
    prec.check_precision_pair("bf16", "bf16")
    with pytest.raises(UserError, match="model.frozen_dtype=bf16 needs train.precision=bf16"):
        prec.check_precision_pair("fp32", "bf16")
    with prec.autocast_context("cpu", "fp32"):
        assert prec.active_autocast_dtype("cpu") is None
    with prec.autocast_context("cpu", "bf16"):
        assert prec.active_autocast_dtype("cpu") is torch.bfloat16
        with prec.autocast_disabled("cpu"):
            assert prec.active_autocast_dtype("cpu") is None
    assert prec.active_autocast_dtype("cpu") is None


def test_run_config_refuses_low_precision_towers_with_fp32_compute():
    from avfewshot.engine.build import resolve_run_config

    with pytest.raises(UserError, match="train.precision=bf16"):
        resolve_run_config(method="zeroshot", task="llp_cls", shots=0, **{"model.frozen_dtype": "bf16"})


def test_towers_store_matmul_weights_in_bf16_and_keep_the_rest_fp32(towers):
    fp32, bf16 = towers
    audio = bf16.audio.branch
    front = {id(m) for root in (audio.spectrogram_extractor, audio.logmel_extractor, audio.bn0) for m in root.modules()}
    for tower in (bf16.image, bf16.clip_text, bf16.audio, bf16.clap_text):
        for module in tower.modules():
            own = list(module.parameters(recurse=False))
            if id(module) in front:
                assert all(p.dtype == torch.float32 for p in own)
            elif isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding, nn.MultiheadAttention)):
                assert all(p.dtype == torch.bfloat16 for p in own), type(module)
            elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
                assert all(p.dtype == torch.float32 for p in own), type(module)
    assert bf16.image.visual.proj.dtype == torch.bfloat16
    assert bf16.audio.branch.layers[0].blocks[0].attn.relative_position_bias_table.dtype == torch.float32
    assert bf16.clip_logit_scale.dtype == bf16.clap_logit_scale.dtype == torch.float32
    size = lambda bb: sum(p.numel() * p.element_size() for p in bb.parameters())  # noqa: E731
    assert 0.5 <= size(bf16) / size(fp32) < 0.56
    for tower in ("image", "clip_text", "audio", "clap_text"):
        assert "frozen_dtype" not in fp32.fingerprint(tower)  # fp32 cache keys are unchanged
        assert bf16.fingerprint(tower) == fp32.fingerprint(tower) + "|frozen_dtype=bf16"


def test_bf16_towers_compute_under_their_own_autocast_and_return_fp32(towers):
    fp32, bf16 = towers
    g = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, fp32.image_size, fp32.image_size, generator=g)
    wave = 0.1 * torch.randn(4, fp32.audio_rate, generator=g)
    ids = fp32.clip_text.tokenize(["a dog barking", "a car"])
    clap_ids, mask = fp32.clap_text.tokenize(["a dog barking", "a car"])
    with torch.no_grad():
        pairs = [(bf16.image(images), fp32.image(images)), (bf16.audio(wave), fp32.audio(wave)),
                 (bf16.clip_text(ids), fp32.clip_text(ids)), (bf16.clap_text(clap_ids, mask), fp32.clap_text(clap_ids, mask))]
        # the audio front end is fp32 whatever the storage dtype and the autocast state
        with prec.autocast_context("cpu", "bf16"):
            spec = bf16.audio.frontend(wave)
        assert spec.dtype == torch.float32 and torch.equal(spec, fp32.audio.frontend(wave))
    for got, ref in pairs:
        assert got.dtype == torch.float32 and rel(got, ref) < TOWER_BOUND


def dgsct_step(backbone, precision: str):
    spec = get_task("llp_cls")
    torch.manual_seed(0)
    method = build_method("dgsct", backbone, spec, spec.class_list(CLASSES), {})
    with torch.no_grad():
        for name, p in method.encoders.named_parameters():
            if name.endswith(("gate", "exchange_gate")):
                p.fill_(0.5)
    g = torch.Generator().manual_seed(1)
    b = 2
    batch = {"frames": torch.randn(b, 10, 3, backbone.image_size, backbone.image_size, generator=g),
             "audio": 0.1 * torch.randn(b, 10, backbone.audio_rate, generator=g),
             "labels": torch.eye(len(CLASSES))[:b], "segment_labels": torch.zeros(b, 10, dtype=torch.long)}
    method.train()
    with prec.autocast_context("cpu", precision):
        scores = method(batch)
        loss, _ = method.loss(batch, scores, 0)
    loss.backward()
    params = [p for p in method.trainable_parameters()]
    return scores.fused.detach(), torch.cat([p.grad.flatten() for p in params if p.grad is not None]), params


def test_a_bf16_dgsct_training_step_runs_and_stays_close_to_fp32(towers, caplog):
    fp32, bf16 = towers
    ref_logits, ref_grads, _ = dgsct_step(fp32, "fp32")
    with caplog.at_level(logging.INFO, logger="avfewshot"):
        logits, grads, params = dgsct_step(bf16, "bf16")
    assert logits.dtype == torch.float32  # logits in fp32 (cosine_logits leaves autocast)
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32 for p in params)
    assert torch.isfinite(grads).all()
    assert rel(logits, ref_logits) < STEP_BOUND and rel(grads, ref_grads) < STEP_BOUND
    messages = [r.getMessage() for r in caplog.records if "fused bottleneck under autocast" in r.getMessage()]
    assert len(messages) <= 1  # logged once per process (possibly by an earlier test)


def test_meta_build_matches_the_cpu_build_for_the_tiny_model(tmp_path):
    from avfewshot.engine.build import TowerCache, build_run, resolve_run_config

    counts = {}
    with encoder_env(tmp_path):
        for device in ("cpu", "meta"):
            cfg = resolve_run_config(demo_layers=True, method="dgsct", task="llp_cls", seed=0, **{"train.device": device})
            method = build_run(cfg, data="none", towers=TowerCache()).method
            tensors = list(method.parameters()) + list(method.buffers())
            assert {t.device.type for t in tensors} == {device}
            counts[device] = [(n, p.numel(), p.requires_grad) for n, p in method.named_parameters()]
    assert counts["meta"] == counts["cpu"]


class _StubBackbone:
    def fingerprint(self, tower: str) -> str:
        return f"stub-{tower}"


def test_feature_cache_is_keyed_by_the_compute_precision(tmp_path):
    """Features computed under bf16 autocast never answer an fp32 run (and the other way round)."""
    from avfewshot.methods.features import FeatureStore

    batch = {"cache_key": ["k1"], "frames": torch.zeros(1)}
    calls = []

    def compute(b):
        calls.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return torch.ones(1, 2, 3, dtype=calls[-1])

    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = FeatureStore(_StubBackbone(), root=tmp_path).get("image", batch, compute)
    fp32 = FeatureStore(_StubBackbone(), root=tmp_path).get("image", batch, compute)
    assert bf16.dtype == torch.bfloat16 and fp32.dtype == torch.float32 and len(calls) == 2
    assert len({p.parent for p in tmp_path.rglob("k1.pt")}) == 2  # two folders
    again = FeatureStore(_StubBackbone(), root=tmp_path).get("image", batch, compute)
    assert again.dtype == torch.float32 and len(calls) == 2  # the fp32 entry is read back
