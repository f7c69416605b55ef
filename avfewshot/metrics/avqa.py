"""MUSIC-AVQA accuracy per question type, per modality and overall, in percent."""
from __future__ import annotations

import json
from typing import Any, Sequence

from avfewshot.errors import UserError

from ._inputs import as_numpy, check_ndim, check_not_empty, check_same_shape

AVQA_MODALITIES = ("Audio", "Visual", "Audio-Visual")


def _question_type(value: Any, index: int) -> tuple[str, str]:
    if isinstance(value, str):
        hint = " (the JSON `type` field is a string holding a list: parse it with json.loads)" if value.startswith("[") else ""
        raise UserError(f"metrics: AVQA question type {index} must be a (modality, subtype) pair, got {value!r}{hint}")
    try:
        modality, subtype = value
    except (TypeError, ValueError):
        raise UserError(f"metrics: AVQA question type {index} must be a (modality, subtype) pair, got {value!r}") from None
    return str(modality), str(subtype)


def parse_avqa_type(type_field: str) -> tuple[str, str]:
    """The (modality, subtype) pair of a MUSIC-AVQA JSON `type` field such as '["Audio", "Counting"]'."""
    try:
        return _question_type(json.loads(type_field), 0)
    except json.JSONDecodeError:
        raise UserError(f"metrics: AVQA type field {type_field!r} is not a JSON list of two strings") from None


def avqa_accuracy(pred: Any, answers: Any, types: Sequence[Any]) -> dict[str, float]:
    """MUSIC-AVQA accuracies in percent, keyed "<modality>/<subtype>", "<modality>" and "Overall".

    pred and answers are (N,) answer indices (ans_vocab order), types the (modality, subtype) of
    each question. Every key is 100 * correct / count over its questions: the per-type keys over
    one type, the modality keys (Audio, Visual, Audio-Visual) pool all questions of their subtypes
    and Overall pools every question. Only types and modalities present appear.
    """
    pred_a, answers_a = as_numpy(pred, "pred"), as_numpy(answers, "answers")
    check_ndim(pred_a, 1, "pred", "(N,)")
    check_same_shape(pred_a, answers_a, "pred", "answers")
    if len(types) != len(pred_a):
        raise UserError(f"metrics: `types` must have one entry per question ({len(pred_a)}), got {len(types)}")
    check_not_empty(len(pred_a), "no AVQA question")
    correct = (pred_a == answers_a).tolist()
    tallies: dict[str, list[int]] = {}
    for index, (hit, raw_type) in enumerate(zip(correct, types)):
        modality, subtype = _question_type(raw_type, index)
        for key in (f"{modality}/{subtype}", modality, "Overall"):
            tally = tallies.setdefault(key, [0, 0])
            tally[0] += int(hit)
            tally[1] += 1
    modality_rank = {m: i for i, m in enumerate(AVQA_MODALITIES)}

    def order(key: str) -> tuple:
        modality = key.split("/")[0]
        return (key == "Overall", modality_rank.get(modality, len(AVQA_MODALITIES)), modality, "/" in key, key)

    return {key: 100.0 * tallies[key][0] / tallies[key][1] for key in sorted(tallies, key=order)}
