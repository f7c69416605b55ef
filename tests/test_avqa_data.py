"""MUSIC-AVQA reader: the real val/test json, the json quirks, repeated ids, vocabularies, synthetic data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avfewshot.data.avqa import (
    encode_answer, encode_question, question_tokens, read_avqa_questions, read_vocab, type_counts,
)
from avfewshot.data.facts import AVQA_TYPES
from avfewshot.errors import AnnotationError, UserError

# docs/datasets.md §5: the released avqa-test.json (9,185 questions, 55 repeated ids)
RELEASED_TEST_COUNTS = {
    ("Audio", "Counting"): 1022, ("Audio", "Comparative"): 601, ("Visual", "Counting"): 1199,
    ("Visual", "Location"): 1228, ("Audio-Visual", "Existential"): 995, ("Audio-Visual", "Counting"): 1274,
    ("Audio-Visual", "Location"): 927, ("Audio-Visual", "Comparative"): 1115, ("Audio-Visual", "Temporal"): 824,
}
# the de-duplicated json_update/ copies shipped in ../shared/data/AVQA (counted by this reader)
UPDATE_TEST_COUNTS = {
    ("Audio", "Counting"): 1017, ("Audio", "Comparative"): 594, ("Visual", "Counting"): 1197,
    ("Visual", "Location"): 1225, ("Audio-Visual", "Existential"): 988, ("Audio-Visual", "Counting"): 1265,
    ("Audio-Visual", "Location"): 920, ("Audio-Visual", "Comparative"): 1101, ("Audio-Visual", "Temporal"): 822,
}


def _write(path, items):
    path.write_text(json.dumps(items, indent=2))
    return path


def _item(qid, answer="two", vid="00000001", content="How many <Object> are in the entire video?", values='["violin"]',
          kind='["Visual", "Counting"]'):
    return {"video_id": vid, "question_id": qid, "type": kind, "question_content": content, "templ_values": values,
            "question_deleted": 0, "anser": answer}


def test_real_test_json_per_type_counts(shared_data):
    split = read_avqa_questions(shared_data / "AVQA" / "avqa-test.json")
    assert split.rows == 9129 and len(split.questions) == 9129
    assert split.duplicates == {} and "repeated" not in split.report()
    counts = split.type_counts()
    assert counts == UPDATE_TEST_COUNTS
    # the shipped file is the de-duplicated one: every type lost a few rows of the released 9,185
    assert all(counts[t] <= RELEASED_TEST_COUNTS[t] for t in AVQA_TYPES)
    assert sum(RELEASED_TEST_COUNTS.values()) - sum(counts.values()) == 9185 - 9129


def test_real_val_json_and_vocab_coverage(shared_data):
    split = read_avqa_questions(shared_data / "AVQA" / "avqa-val.json")
    assert len(split.questions) == 4568 and sum(type_counts(split.questions).values()) == 4568
    words, answers = read_vocab(kind="question"), read_vocab(kind="answer")
    assert len(words) == 93 and words[0] == "<pad>" and len(answers) == 42 and answers[:3] == ["two", "cello", "congas"]
    qv, av = {w: i for i, w in enumerate(words)}, {w: i for i, w in enumerate(answers)}
    test = read_avqa_questions(shared_data / "AVQA" / "avqa-test.json")
    lengths = []
    for q in split.questions + test.questions:
        ids = encode_question(q, qv)
        assert len(ids) == 14
        lengths.append(sum(i != 0 for i in ids))
        encode_answer(q, av)
    assert max(lengths) == 14


def test_shared_vocab_is_the_prompts_copy(shared_data):
    assert read_vocab(shared_data / "AVQA" / "ques_vocab.txt") == read_vocab(kind="question")
    assert read_vocab(shared_data / "AVQA" / "ans_vocab.txt", kind="answer") == read_vocab(kind="answer")


def test_repeated_ids_are_named_and_never_silently_used(tmp_path, caplog):
    path = _write(tmp_path / "avqa-test.json", [_item(1), _item(1138, "two"), _item(2), _item(1138, "four"), _item(7), _item(7)])
    split = read_avqa_questions(path)
    assert split.duplicates == {1138: [1, 3], 7: [4, 5]} and split.conflicting == (1138,)
    assert [q.question_id for q in split.questions] == [1, 2]
    assert "7, 1138" in split.report() and "conflicting answers for ids 1138" in split.report()
    assert "1138" in caplog.text
    first = read_avqa_questions(path, duplicates="first")
    assert [(q.question_id, q.answer) for q in first.questions] == [(1, "two"), (1138, "two"), (2, "two"), (7, "two")]
    with pytest.raises(AnnotationError, match="repeated question ids: 7, 1138"):
        read_avqa_questions(path, duplicates="error")


@pytest.mark.parametrize("change, message", [
    ({"type": "[Audio, Counting]"}, r"row 0: `type` .* is not a JSON list"),
    ({"type": '["Audio", "Location"]'}, r"row 0: `type` \['Audio', 'Location'\] is not one of"),
    ({"templ_values": "[]"}, r"row 0 \(id 1\): 1 placeholder\(s\) in the question but 0 `templ_values`"),
    ({"question_id": "1"}, r"row 0: `question_id` '1' is not an integer"),
])
def test_bad_fields_name_file_row_and_field(tmp_path, change, message):
    item = _item(1)
    item.update(change)
    path = _write(tmp_path / "q.json", [item])
    with pytest.raises(AnnotationError, match=message) as info:
        read_avqa_questions(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_answer_key_mentions_the_misspelling(tmp_path):
    item = _item(1)
    del item["anser"]
    with pytest.raises(AnnotationError, match="spelled `anser`"):
        read_avqa_questions(_write(tmp_path / "q.json", [item]))
    item["answer"] = "two"  # a corrected spelling is accepted
    assert read_avqa_questions(_write(tmp_path / "q.json", [item])).questions[0].answer == "two"


def test_tokenisation_rules():
    assert question_tokens("How many sounding <Object> in the video\uff1f", ["violin"], 8) == [
        "How", "many", "sounding", "violin", "in", "the", "video", "<pad>"]
    assert question_tokens("Are there <Object> and <Object> sound? ", ["cello", "piano"], 6) == [
        "Are", "there", "cello", "and", "piano", "sound"]
    with pytest.raises(UserError, match="more than 3"):
        question_tokens("How many musical instruments?", [], 3)


def _dominant_tones(wave: np.ndarray, rate: int = 32000) -> set:
    spectrum = np.abs(np.fft.rfft(wave))
    freqs = np.fft.rfftfreq(len(wave), 1 / rate)
    peaks = set()
    for hz in freqs[spectrum > 0.05 * len(wave) * 0.05]:
        peaks.add(int(round(hz / 30.0)) * 30)
    return peaks


def test_synthetic_avqa_answers_follow_the_content(tmp_path):
    """An oracle reading the media (mean colour per half, tones in the audio) answers three template kinds."""
    from PIL import Image

    from avfewshot.data.synth.avqa import instrument_signature, make_avqa

    manifest = make_avqa(tmp_path, videos={"train": 10, "val": 2, "test": 4}, questions_per_video=13, seed=3)
    questions = read_avqa_questions(tmp_path / "avqa-train.json").questions
    test = read_avqa_questions(tmp_path / "avqa-test.json")
    assert len(test.duplicates) == 1 and len(test.conflicting) == 1  # the conflicting copy is reported
    qv = {w: i for i, w in enumerate(read_vocab())}
    av = {w: i for i, w in enumerate(read_vocab(kind="answer"))}
    instruments = manifest["instruments"]
    checked = 0
    for q in questions:
        encode_question(q, qv), encode_answer(q, av)
        frame = np.asarray(Image.open(tmp_path / "frames" / q.video_id / "00000001.jpg").convert("RGB"), dtype=float)
        wave = np.load(tmp_path / "audio_wave" / f"{q.video_id}.npy")
        heard = {i for i in instruments if int(instrument_signature(i)[1]) in _dominant_tones(wave)}
        if q.content.startswith("How many musical instruments were heard"):
            assert q.answer == ("zero", "one", "two")[len(heard)]
            checked += 1
        elif q.content.startswith("Is there a <Object> sound"):
            assert q.answer == ("yes" if q.templ_values[0] in heard else "no")
            checked += 1
        elif q.content.startswith("What kind of instrument is the <LRer>"):
            half = frame[10:38, 6:26] if q.templ_values[0] == "leftest" else frame[10:38, 38:58]
            colour = np.asarray(instrument_signature(q.answer)[0], dtype=float)
            assert np.abs(half.mean((0, 1)) - colour).max() < 12
            checked += 1
    assert checked >= 10
