"""The CLAP prompt text under each preset: dgsct-official keeps the raw LLP names ("Frying_(food)") as the
released code ("The sounds of " + name); the paper preset writes them with spaces."""
from __future__ import annotations

import pytest
import torch

from avfewshot.engine.build import resolve_run_config
from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot.methods import build_method
from avfewshot.paths import runners_dir
from avfewshot.prompts import read_class_file
from avfewshot.tasks import get_task

from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
LLP = read_class_file("llp")
EXPECTED = {
    "dgsct-official": ["The sounds of " + name for name in LLP],
    "paper": ["The sounds of " + name.replace("_", " ") for name in LLP],
}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    with encoder_env(tmp_path_factory.mktemp("prompts")):
        yield build_backbone(ModelConfig(**TINY))


def method_for(preset, backbone, recipe=None):
    cfg = resolve_run_config(recipe, method="dgsct", task="llp_cls", preset=preset, demo_layers=False)
    spec = get_task("llp_cls")
    torch.manual_seed(0)
    return build_method("dgsct", backbone, spec, spec.class_list(LLP), cfg.method_args)


def test_llp_has_eleven_underscore_names():
    assert len(LLP) == 25 and sum("_" in n for n in LLP) == 11 and "Frying_(food)" in LLP


@pytest.mark.parametrize("preset,recipe", [("dgsct-official", None), ("dgsct-official", "dgsct_official.yaml"),
                                           ("paper", None), ("paper", "dgsct.yaml")])
def test_clap_prompt_strings_and_token_ids_per_preset(backbone, preset, recipe):
    method = method_for(preset, backbone, runners_dir() / recipe if recipe else None)
    assert method.clap_prompts() == EXPECTED[preset]
    text = backbone.clap_text
    ids, mask = text.tokenize(method.clap_prompts())
    want_ids, want_mask = text.tokenize(EXPECTED[preset])
    assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)
    tok = text.tokenizer
    for row, name in enumerate(LLP):
        n = int(mask[row].sum())
        body = ids[row, 1:n - 1].tolist()
        assert ids[row, 0] == tok.bos_token_id and ids[row, n - 1] == tok.eos_token_id
        assert body == tok.encode(EXPECTED[preset][row])
        assert tok._tok.decode(body) == EXPECTED[preset][row]  # the ids spell the prompt exactly
    # the frozen prompt features the audio-text branch uses are those of exactly these ids
    feats = torch.nn.functional.normalize(text(ids, mask), dim=-1)
    assert torch.allclose(method.clap_text, feats, atol=1e-6)


def test_official_and_paper_ids_differ_exactly_on_underscore_names(backbone):
    text = backbone.clap_text
    official, _ = text.tokenize(EXPECTED["dgsct-official"])
    paper, _ = text.tokenize(EXPECTED["paper"])
    differs = [not torch.equal(a, b) for a, b in zip(official, paper)]
    assert differs == ["_" in n for n in LLP]
