"""MUSIC-AVQA question files: validated reading, duplicate ids, vocabularies and question tokens.

The json quirks (docs/datasets.md §4): ``type`` and ``templ_values`` are strings holding JSON lists,
the answer key is the misspelled ``anser``, and the released ``avqa-test.json`` repeats 55 question ids
(some with conflicting answers). Repeated ids are never used silently: :func:`read_avqa_questions`
names them in ``AVQASplit.duplicates`` and, by policy, drops every copy (default), keeps the first,
or refuses the file.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from ..errors import AnnotationError, UserError
from ..paths import prompts_dir
from .facts import AVQA_ANSWER_VOCAB, AVQA_JSON_KEYS, AVQA_MAX_TOKENS, AVQA_QUESTION_VOCAB, AVQA_TYPES

log = logging.getLogger("avfewshot")

PAD = "<pad>"
DUPLICATE_POLICIES = ("drop", "first", "error")
_MODALITIES = tuple(dict.fromkeys(m for m, _ in AVQA_TYPES))


@dataclass(frozen=True)
class AVQAQuestion:
    video_id: str
    question_id: int
    modality: str  # Audio, Visual or Audio-Visual
    subtype: str  # Counting, Comparative, Location, Existential, Temporal
    content: str  # the template text with <Object>-style placeholders
    templ_values: Tuple[str, ...]
    answer: str
    row: int  # 0-based position in the json array


@dataclass
class AVQASplit:
    path: Path
    questions: List[AVQAQuestion]  # what training / evaluation may use
    rows: int  # objects in the file
    duplicates: Dict[int, List[int]] = field(default_factory=dict)  # repeated id -> its rows
    conflicting: Tuple[int, ...] = ()  # repeated ids whose copies give different answers

    def type_counts(self) -> Dict[Tuple[str, str], int]:
        return type_counts(self.questions)

    def report(self) -> str:
        """One line per fact: rows, usable questions, and the repeated ids by name."""
        lines = [f"{self.path.name}: {self.rows} questions, {len(self.questions)} used"]
        if self.duplicates:
            ids = ", ".join(str(q) for q in sorted(self.duplicates))
            lines.append(f"{self.path.name}: {len(self.duplicates)} repeated question ids: {ids}")
        if self.conflicting:
            lines.append(
                f"{self.path.name}: conflicting answers for ids {', '.join(str(q) for q in self.conflicting)}"
            )
        return "\n".join(lines)


def type_counts(questions: Sequence[AVQAQuestion]) -> Dict[Tuple[str, str], int]:
    """Questions per (modality, subtype), in the dataset's type order."""
    counts = Counter((q.modality, q.subtype) for q in questions)
    return {t: counts[t] for t in AVQA_TYPES if counts[t]}


def _string_list(value: object, path: Path, row: int, key: str) -> List[str]:
    """``type`` / ``templ_values`` are strings holding a JSON list (a real list is accepted too)."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise AnnotationError(f"{path}, question row {row}: `{key}` {value!r} is not a JSON list") from None
    if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
        raise AnnotationError(f"{path}, question row {row}: `{key}` must be a list of strings, got {value!r}")
    return parsed


def _question(obj: object, path: Path, row: int) -> AVQAQuestion:
    if not isinstance(obj, dict):
        raise AnnotationError(f"{path}, question row {row}: expected an object, got {type(obj).__name__}")
    keys = dict(obj)
    if "anser" not in keys and "answer" in keys:  # tolerate a corrected spelling
        keys["anser"] = keys["answer"]
    missing = [k for k in AVQA_JSON_KEYS if k not in keys]
    if missing:
        raise AnnotationError(
            f"{path}, question row {row}: missing key(s) {', '.join(missing)} "
            f"(MUSIC-AVQA objects carry {', '.join(AVQA_JSON_KEYS)}; the answer key is spelled `anser`)"
        )
    kind = _string_list(keys["type"], path, row, "type")
    if len(kind) != 2 or tuple(kind) not in AVQA_TYPES:
        valid = "; ".join("/".join(t) for t in AVQA_TYPES)
        raise AnnotationError(f"{path}, question row {row}: `type` {kind!r} is not one of {valid}")
    values = _string_list(keys["templ_values"], path, row, "templ_values")
    qid = keys["question_id"]
    if isinstance(qid, bool) or not isinstance(qid, int):
        raise AnnotationError(f"{path}, question row {row}: `question_id` {qid!r} is not an integer")
    for key in ("video_id", "question_content", "anser"):
        if not isinstance(keys[key], str) or not keys[key].strip():
            raise AnnotationError(f"{path}, question row {row}: `{key}` must be a non-empty string")
    content = keys["question_content"]
    holes = sum("<" in token for token in content.split(" "))
    if holes != len(values):
        raise AnnotationError(
            f"{path}, question row {row} (id {qid}): {holes} placeholder(s) in the question but "
            f"{len(values)} `templ_values`"
        )
    return AVQAQuestion(keys["video_id"], qid, kind[0], kind[1], content, tuple(values), keys["anser"], row)


def read_avqa_questions(path: Union[str, Path], duplicates: str = "drop") -> AVQASplit:
    """Read and validate one MUSIC-AVQA json; repeated question ids are named, then handled by policy.

    duplicates: "drop" removes every copy of a repeated id (the copies may disagree, as id 1138 does
    in the released test json), "first" keeps the first copy, "error" refuses the file.
    """
    path = Path(path)
    if duplicates not in DUPLICATE_POLICIES:
        raise UserError(f"AVQA: duplicates policy {duplicates!r} is not one of {', '.join(DUPLICATE_POLICIES)}")
    if not path.is_file():
        raise AnnotationError(f"{path}: AVQA question file not found (avqa-{{train,val,test}}.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON array of question objects")
    rows = [_question(obj, path, row) for row, obj in enumerate(data)]
    by_id: Dict[int, List[int]] = {}
    for q in rows:
        by_id.setdefault(q.question_id, []).append(q.row)
    repeated = {qid: where for qid, where in by_id.items() if len(where) > 1}
    conflicting = tuple(sorted(q for q, where in repeated.items() if len({rows[r].answer for r in where}) > 1))
    split = AVQASplit(path, rows, len(rows), repeated, conflicting)
    if repeated:
        if duplicates == "error":
            raise AnnotationError(split.report().splitlines()[1] + " (use the de-duplicated json_update/ files)")
        keep_first = duplicates == "first"
        split.questions = [
            q for q in rows if q.question_id not in repeated or (keep_first and repeated[q.question_id][0] == q.row)
        ]
        log.warning("%s (%s)", split.report().replace("\n", "; "), f"policy {duplicates!r}")
    return split


def _collapse_repeats(entries: List[str], path: Path) -> List[str]:
    """The released ques_vocab.txt is its 93-token list written twice (186 lines): keep one copy."""
    for copies in range(len(entries), 1, -1):
        if len(entries) % copies == 0:
            size = len(entries) // copies
            if entries == entries[:size] * copies:
                log.info("%s: the vocabulary is written %d times over; using one copy of %d", path, copies, size)
                return entries[:size]
    return entries


def read_vocab(path: Union[str, Path, None] = None, kind: str = "question") -> List[str]:
    """A one-entry-per-line vocabulary; default: the official files in prompts/avqa/."""
    if path is None:
        path = prompts_dir() / "avqa" / (AVQA_QUESTION_VOCAB if kind == "question" else AVQA_ANSWER_VOCAB)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: AVQA vocabulary not found")
    entries = [line.rstrip("\r") for line in path.read_text(encoding="utf-8").split("\n")]
    while entries and not entries[-1]:
        entries.pop()
    entries = _collapse_repeats(entries, path)
    seen: Dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        if not entry.strip():
            raise AnnotationError(f"{path}, line {number}: empty vocabulary entry")
        if entry in seen:
            raise AnnotationError(f"{path}, line {number}: {entry!r} repeats line {seen[entry]}")
        seen[entry] = number
    if kind == "question" and (not entries or entries[0] != PAD):
        raise AnnotationError(f"{path}, line 1: a question vocabulary starts with {PAD}")
    return entries


def question_tokens(content: str, templ_values: Sequence[str], length: int = AVQA_MAX_TOKENS) -> List[str]:
    """The official tokenisation: rstrip, split on single spaces, drop the last character of the
    last token (the "?" or full-width "？"), fill each token holding "<" with the next templ value,
    pad with <pad> to ``length``."""
    tokens = content.rstrip().split(" ")
    tokens[-1] = tokens[-1][:-1]
    values = iter(templ_values)
    filled = [next(values, token) if "<" in token else token for token in tokens]
    if len(filled) > length:
        raise UserError(f"AVQA: question {content!r} has {len(filled)} tokens, more than {length}")
    return filled + [PAD] * (length - len(filled))


def encode_question(question: AVQAQuestion, vocab: Dict[str, int], length: int = AVQA_MAX_TOKENS) -> List[int]:
    tokens = question_tokens(question.content, question.templ_values, length)
    unknown = [t for t in tokens if t not in vocab]
    if unknown:
        raise UserError(
            f"AVQA question id {question.question_id} (row {question.row}): token(s) {unknown} are not in "
            "the question vocabulary"
        )
    return [vocab[t] for t in tokens]


def encode_answer(question: AVQAQuestion, answers: Dict[str, int]) -> int:
    if question.answer not in answers:
        raise UserError(
            f"AVQA question id {question.question_id} (row {question.row}): answer {question.answer!r} "
            "is not in the answer vocabulary"
        )
    return answers[question.answer]
