"""Text tokenizers for the two text towers, all from local files.

- CLIP: open_clip's bundled BPE (``SimpleTokenizer``), offline by construction.
- RoBERTa (CLAP): transformers' ``RobertaTokenizer`` from a folder with vocab.json + merges.txt.
  A tokenizer whose vocabulary does not match the text tower is refused: laion-clap's offline
  fallback is a 5-entry tokenizer that maps every text to ``<s></s>`` without complaint.
- ``tiny-bpe``: a small byte-level BPE trained (deterministically) on ``tiny_corpus.txt`` on first
  use and cached; it loads through the very same ``RobertaTokenizer`` path.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import List, Optional, Tuple

from .. import paths
from ..errors import MissingCheckpointError, UserError
from . import specs

TINY_CORPUS = Path(__file__).resolve().parent / "tiny_corpus.txt"
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4: bos, pad, eos, unk, mask
TOKENIZER_FILES = ("vocab.json", "merges.txt")
_LOCK = threading.Lock()


class ClipTokenizer:
    """Text -> (C, context_length) int64 ids with open_clip's bundled BPE."""

    def __init__(self, context_length: int = 77):
        from open_clip.tokenizer import SimpleTokenizer

        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)
        self.vocab_size = len(self._bpe.encoder)
        self.sot_token_id = self._bpe.sot_token_id
        self.eot_token_id = self._bpe.eot_token_id

    def __call__(self, texts: List[str]):
        return self._bpe(list(texts), context_length=self.context_length)

    def encode(self, text: str) -> List[int]:
        """BPE ids of ``text`` without start/end tokens."""
        return self._bpe.encode(text)


class RobertaTextTokenizer:
    """Text -> (ids, attention mask), padded to ``context_length`` as CLAP does."""

    def __init__(self, folder: Path, expected_vocab: int, context_length: int = 77):
        self.folder = Path(folder)
        self.context_length = context_length
        self._tok = load_roberta_tokenizer(self.folder, expected_vocab)
        self.vocab_size = len(self._tok)
        self.pad_token_id = self._tok.pad_token_id
        self.bos_token_id = self._tok.bos_token_id
        self.eos_token_id = self._tok.eos_token_id

    def __call__(self, texts: List[str]):
        out = self._tok(list(texts), padding="max_length", truncation=True, max_length=self.context_length,
                        return_tensors="pt")
        return out["input_ids"], out["attention_mask"]

    def encode(self, text: str) -> List[int]:
        """BPE ids of ``text`` without ``<s>``/``</s>``."""
        return self._tok(text, add_special_tokens=False)["input_ids"]

    def digest(self) -> str:
        return folder_digest(self.folder)


class PlaceholderTokenizer:
    """Deterministic stand-in ids (byte values) for builds that only count parameters.

    ``avfewshot params`` builds real-size towers with random weights and must not need the
    RoBERTa vocabulary files; nothing built with this tokenizer is ever run on real text.
    """

    folder = Path("<placeholder>")

    def __init__(self, vocab_size: int, context_length: int = 77):
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.bos_token_id, self.pad_token_id, self.eos_token_id = 0, 1, 2

    def encode(self, text: str) -> List[int]:
        """One id per word, as RoBERTa's BPE gives for common words ("The sounds of" -> 3 ids)."""
        import zlib

        return [3 + zlib.crc32(word.encode("utf-8")) % (self.vocab_size - 3) for word in text.split()]

    def __call__(self, texts: List[str]):
        import torch

        n = self.context_length
        ids = torch.full((len(texts), n), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(texts), n), dtype=torch.long)
        for row, text in enumerate(texts):
            seq = [self.bos_token_id, *self.encode(text)[: n - 2], self.eos_token_id]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return ids, mask

    def digest(self) -> str:
        return "placeholder"


def load_roberta_tokenizer(folder: Path, expected_vocab: int):
    missing = [f for f in TOKENIZER_FILES if not (folder / f).is_file()]
    if missing:
        raise MissingCheckpointError(
            f"RoBERTa tokenizer files {', '.join(missing)} not found in {folder}. Put roberta-base's vocab.json and "
            f"merges.txt there ({specs.catalogue().tokenizers.get('roberta-base').source}) or set "
            f"model.clap_tokenizer to the folder that holds them.")
    from transformers import RobertaTokenizer

    try:
        tok = RobertaTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    except Exception as exc:
        raise UserError(f"cannot read the RoBERTa tokenizer in {folder}: {exc}") from None
    check_tokenizer(tok, expected_vocab, folder)
    return tok


def check_tokenizer(tok, expected_vocab: int, folder: Path) -> None:
    """Refuse a tokenizer that cannot be the one the text tower was trained with."""
    size = len(tok)
    if size != expected_vocab:
        hint = (" It looks like the degenerate offline fallback (a handful of special tokens that maps every text "
                "to <s></s>)." if size < 100 else "")
        raise UserError(
            f"the RoBERTa tokenizer in {folder} has {size} entries but the CLAP text tower expects {expected_vocab}."
            f"{hint} Use roberta-base's vocab.json + merges.txt (or the tiny tokenizer for the tiny preset).")
    probe = tok("a dog barking", add_special_tokens=True)["input_ids"]
    if len(probe) < 3 or probe[0] != tok.bos_token_id or probe[-1] != tok.eos_token_id:
        raise UserError(f"the RoBERTa tokenizer in {folder} does not wrap text in <s> ... </s>: {probe}")


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:16]


# -- the tiny tokenizer ----------------------------------------------------------------------
def tiny_tokenizer_dir(vocab_size: int) -> Path:
    import tokenizers

    key = hashlib.sha256(TINY_CORPUS.read_bytes() + f"|{vocab_size}|{tokenizers.__version__}".encode()).hexdigest()[:12]
    return paths.cache_root() / "tokenizers" / f"tiny-bpe-{vocab_size}-{key}"


def train_tiny_bpe(folder: Path, vocab_size: int) -> None:
    from tokenizers import ByteLevelBPETokenizer

    lines = [l for l in TINY_CORPUS.read_text().splitlines() if l.strip() and not l.startswith("#")]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=1, special_tokens=ROBERTA_SPECIALS,
                            show_progress=False)
    if bpe.get_vocab_size() != vocab_size:
        raise UserError(f"{TINY_CORPUS} yields only {bpe.get_vocab_size()} BPE tokens; the tiny CLAP needs "
                        f"{vocab_size}: add text to the corpus or lower text.vocab_size in clap-tiny.json")
    bpe.save_model(str(folder))


def ensure_tiny_tokenizer(vocab_size: int) -> Path:
    """The tiny BPE folder, trained into the cache on first use (deterministic, a fraction of a second)."""
    folder = tiny_tokenizer_dir(vocab_size)
    with _LOCK:
        if all((folder / f).is_file() for f in TOKENIZER_FILES):
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        try:
            train_tiny_bpe(tmp, vocab_size)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process won the race: its files are identical
                if not all((folder / f).is_file() for f in TOKENIZER_FILES):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def roberta_tokenizer_dir(text_cfg: dict, override: Optional[str]) -> Path:
    """Where the CLAP tokenizer files are: model.clap_tokenizer, else the architecture's default."""
    if override:
        return Path(override).expanduser()
    name = text_cfg.get("tokenizer", "roberta-base")
    if name == "tiny-bpe":
        return ensure_tiny_tokenizer(int(text_cfg["vocab_size"]))
    entry = specs.catalogue().tokenizers.get(name)
    return paths.weights_dir() / entry.folder


def build_clap_tokenizer(text_cfg: dict, override: Optional[str], placeholder: bool = False):
    if placeholder:
        return PlaceholderTokenizer(int(text_cfg["vocab_size"]), int(text_cfg.get("context_length", 77)))
    folder = roberta_tokenizer_dir(text_cfg, override)
    return RobertaTextTokenizer(folder, int(text_cfg["vocab_size"]), int(text_cfg.get("context_length", 77)))


def expected_tokenizer_location(text_cfg: dict) -> Tuple[str, Path]:
    """(name, folder) for listings, without training anything."""
    name = text_cfg.get("tokenizer", "roberta-base")
    if name == "tiny-bpe":
        return name, tiny_tokenizer_dir(int(text_cfg["vocab_size"]))
    return name, paths.weights_dir() / specs.catalogue().tokenizers.get(name).folder
