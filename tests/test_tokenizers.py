"""Tokenizers: open_clip's bundled BPE, RoBERTa from local files, the degenerate-tokenizer guard."""
from __future__ import annotations

import pytest

from avfewshot.encoders import tokenizers as tk
from avfewshot.errors import MissingCheckpointError, UserError

from helpers.bpe import write_degenerate_tokenizer


def test_degenerate_tokenizer_is_refused(tmp_path):
    folder = write_degenerate_tokenizer(tmp_path / "fallback")
    with pytest.raises(UserError) as err:
        tk.RobertaTextTokenizer(folder, expected_vocab=50265)
    msg = str(err.value)
    assert "5 entries" in msg and "50265" in msg and "degenerate" in msg and str(folder) in msg


def test_missing_tokenizer_files_name_the_folder_and_source(tmp_path):
    with pytest.raises(MissingCheckpointError) as err:
        tk.RobertaTextTokenizer(tmp_path / "roberta-base", expected_vocab=50265)
    assert str(tmp_path / "roberta-base") in str(err.value) and "huggingface.co" in str(err.value)


def test_tiny_bpe_is_deterministic_and_loads_through_roberta_tokenizer(tmp_path):
    from transformers import RobertaTokenizer

    folder = tk.ensure_tiny_tokenizer(512)
    other = tmp_path / "again"
    other.mkdir()
    tk.train_tiny_bpe(other, 512)
    for name in tk.TOKENIZER_FILES:
        assert (folder / name).read_bytes() == (other / name).read_bytes()
    tok = tk.RobertaTextTokenizer(folder, expected_vocab=512, context_length=16)
    assert isinstance(tok._tok, RobertaTokenizer)
    assert tok.vocab_size == 512 and (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 2)
    ids, mask = tok(["The sounds of dog barking", "a"])
    assert ids.shape == (2, 16) and mask.shape == (2, 16)
    assert ids[0, 0] == 0 and ids[1].tolist()[:3] == [0, tok.encode("a")[0], 2]
    assert mask[1].tolist() == [1, 1, 1] + [0] * 13 and (ids[1, 3:] == 1).all()
    # class names of the prompts were in the corpus: they encode to few tokens
    assert len(tok.encode("The sounds of")) <= 4
    # a wrong expected size is refused on the same path
    with pytest.raises(UserError, match="512 entries"):
        tk.RobertaTextTokenizer(folder, expected_vocab=50265)


def test_clip_tokenizer_is_open_clip_bpe():
    tok = tk.ClipTokenizer()
    ids = tok(["a photo of a dog."])
    assert ids.shape == (1, 77)
    seq = ids[0][ids[0] > 0].tolist()
    assert seq[0] == 49406 and seq[-1] == 49407 and tok.vocab_size == 49408
    assert seq[1:-1] == tok.encode("a photo of a dog.")


def test_tokenizer_override_folder_is_used(tmp_path):
    src = tk.ensure_tiny_tokenizer(512)
    dst = tmp_path / "mine"
    dst.mkdir()
    for name in tk.TOKENIZER_FILES:
        (dst / name).write_bytes((src / name).read_bytes())
    tok = tk.build_clap_tokenizer({"vocab_size": 512, "tokenizer": "tiny-bpe", "context_length": 77}, str(dst))
    assert tok.folder == dst
