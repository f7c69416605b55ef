"""Metrics: official golden vectors (AVVP, AVS) and hand-made edge cases for every metric."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avfewshot import metrics as M
from avfewshot.errors import UserError

AVVP_FIELDS = ("audio", "visual", "audio_visual", "event_pooled")
LEVELS = ("segment_level", "event_level")
FINAL_FIELDS = ("audio", "visual", "audio_visual", "type_at_av", "event_at_av")


@pytest.fixture(scope="module")
def avvp_golden(golden_dir):
    return json.loads((golden_dir / "metrics" / "avvp_golden.json").read_text())


@pytest.fixture(scope="module")
def avs_golden(golden_dir):
    data = json.loads((golden_dir / "metrics" / "avs_golden.json").read_text())
    data["logits_array"] = np.array(data["logits"], dtype=np.float32)
    data["masks_array"] = np.array(data["gt_masks"], dtype=np.int64)
    return data


def _row(t_start: int, t_end: int, length: int = 10) -> np.ndarray:
    row = np.zeros(length, dtype=np.int64)
    row[t_start:t_end] = 1
    return row


def _clip(rows: dict[int, list[tuple[int, int]]], num_classes: int = 25) -> np.ndarray:
    """(C, 10) 0/1 matrix with the given half-open runs per class."""
    matrix = np.zeros((num_classes, 10), dtype=np.int64)
    for class_index, runs in rows.items():
        for start, end in runs:
            matrix[class_index, start:end] = 1
    return matrix


EMPTY = _clip({})


# --------------------------------------------------------------------------- AVVP golden


def test_avvp_golden_predictions_match_official_so(avvp_golden):
    inputs = avvp_golden["inputs"]
    so_a, so_v = M.avvp_predictions(
        np.array(inputs["video_prob"], dtype=np.float32),
        np.array(inputs["audio_frame_prob"], dtype=np.float32),
        np.array(inputs["visual_frame_prob"], dtype=np.float32),
    )
    np.testing.assert_array_equal(so_a, np.array(avvp_golden["intermediate"]["SO_a"]))
    np.testing.assert_array_equal(so_v, np.array(avvp_golden["intermediate"]["SO_v"]))
    # Gated-off clips predict nothing in either modality.
    gated = [i for i, kind in enumerate(avvp_golden["clip_kind"]) if kind == "no_predictions_gate_closed"]
    assert gated and so_a[gated].sum() == 0 and so_v[gated].sum() == 0


def test_avvp_golden_per_clip_and_final(avvp_golden):
    so = avvp_golden["intermediate"]
    gt = avvp_golden["ground_truth"]
    result = M.avvp_segment_and_event_f(so["SO_a"], so["SO_v"], gt["GT_a"], gt["GT_v"])
    for level in LEVELS:
        for field in AVVP_FIELDS:
            expected = np.array(avvp_golden["per_clip"][level][field])
            np.testing.assert_allclose(result.per_clip[level][field], expected, rtol=0, atol=1e-12)
        for field in FINAL_FIELDS:
            assert getattr(getattr(result, level), field) == pytest.approx(
                avvp_golden["final"][level][field], abs=1e-12
            ), (level, field)
    returned = avvp_golden["final"]["eval_function_return_value"]
    assert [result.segment_level.type_at_av, result.event_level.type_at_av] == pytest.approx(returned, abs=1e-12)
    printed = [float(line.rsplit(":", 1)[1]) for line in avvp_golden["final"]["printed_lines"]]
    ours = [float(line.rsplit(":", 1)[1]) for line in result.summary_lines()]
    assert ours == printed


def test_avvp_golden_edge_cases(avvp_golden):
    categories = avvp_golden["categories"]
    scores = []
    for case in avvp_golden["edge_cases"]:
        name = case["name"]
        for rows_key, gt_key in (("gt_rows_audio", "GT_a"), ("gt_rows_visual", "GT_v")):
            events = [(onset, offset, categories.index(label)) for onset, offset, label in case[rows_key]]
            np.testing.assert_array_equal(M.avvp_dense_ground_truth(events), np.array(case[gt_key]), err_msg=name)
        so_a, so_v = M.avvp_predictions(case["video_prob"], case["audio_frame_prob"], case["visual_frame_prob"])
        np.testing.assert_array_equal(so_a, np.array(case["SO_a"]), err_msg=name)
        np.testing.assert_array_equal(so_v, np.array(case["SO_v"]), err_msg=name)
        clip = M.avvp_clip_scores(so_a, so_v, case["GT_a"], case["GT_v"])
        for level in LEVELS:
            for field in AVVP_FIELDS:
                assert getattr(getattr(clip, level), field) == pytest.approx(case[level][field], abs=1e-12), (
                    name, level, field)
        scores.append(clip)
    result = M.avvp_aggregate(scores)
    for level in LEVELS:
        for field in FINAL_FIELDS:
            expected = avvp_golden["edge_cases_final"][level][field]
            assert getattr(getattr(result, level), field) == pytest.approx(expected, abs=1e-12), (level, field)


# --------------------------------------------------------------------------- AVVP hand-made


def test_avvp_empty_clip_scores_one_everywhere():
    clip = M.avvp_clip_scores(EMPTY, EMPTY, EMPTY, EMPTY)
    for level in (clip.segment_level, clip.event_level):
        assert (level.audio, level.visual, level.audio_visual, level.event_pooled) == (1.0, 1.0, 1.0, 1.0)


def test_avvp_false_positive_on_empty_gt_scores_zero():
    pred_a = _clip({3: [(2, 5)]})
    clip = M.avvp_clip_scores(pred_a, EMPTY, EMPTY, EMPTY)
    assert clip.segment_level.audio == 0.0 and clip.event_level.audio == 0.0
    assert clip.segment_level.visual == 1.0 and clip.segment_level.audio_visual == 1.0


def test_avvp_run_split_in_two():
    gt = _clip({3: [(0, 10)]})
    one_half_matches = M.avvp_clip_scores(_clip({3: [(0, 4), (5, 10)]}), EMPTY, gt, EMPTY)
    # segments: TP 9, FN 1 -> 18/19; events: [5,10) matches (IoU 0.5), [0,4) does not -> TP1 FP1 FN0
    assert one_half_matches.segment_level.audio == pytest.approx(18 / 19, abs=1e-15)
    assert one_half_matches.event_level.audio == pytest.approx(2 / 3, abs=1e-15)
    none_match = M.avvp_clip_scores(_clip({3: [(0, 4), (6, 10)]}), EMPTY, gt, EMPTY)
    assert none_match.segment_level.audio == pytest.approx(8 / 9, abs=1e-15)
    assert none_match.event_level.audio == 0.0


def test_avvp_iou_exactly_half_matches_and_just_below_does_not():
    nested = M.avvp_clip_scores(_clip({0: [(1, 3)]}), EMPTY, _clip({0: [(0, 4)]}), EMPTY)  # 2 of 4
    shifted = M.avvp_clip_scores(_clip({0: [(2, 8)]}), EMPTY, _clip({0: [(0, 6)]}), EMPTY)  # 4 of 8
    below = M.avvp_clip_scores(_clip({0: [(0, 2)]}), EMPTY, _clip({0: [(0, 5)]}), EMPTY)  # 2 of 5
    assert nested.event_level.audio == 1.0
    assert shifted.event_level.audio == 1.0
    assert below.event_level.audio == 0.0


def test_avvp_event_at_av_pools_audio_and_visual_counts_per_class():
    gt_a = _clip({0: [(0, 3), (5, 8)], 3: [(0, 10)]})
    gt_v = _clip({0: [(2, 10)]})
    pred_a = gt_a.copy()  # perfect audio: Speech TP 2, Dog TP 1
    clip = M.avvp_clip_scores(pred_a, EMPTY, gt_a, gt_v)
    assert clip.event_level.audio == 1.0 and clip.event_level.visual == 0.0
    # pooled Speech: TP 2 + 0, FN 0 + 1 -> 4/5; pooled Dog 1 -> clip (0.8 + 1) / 2
    assert clip.event_level.event_pooled == pytest.approx((0.8 + 1.0) / 2, abs=1e-15)
    # segment level: Speech TP 6, FN 8 -> 12/20; Dog 1
    assert clip.segment_level.event_pooled == pytest.approx((12 / 20 + 1.0) / 2, abs=1e-15)
    # the audio-visual GT is the product: Speech on [2,3) and [5,8), never predicted visually
    assert clip.segment_level.audio_visual == 0.0


def test_avvp_predictions_ties_count_and_fused_gate_suppresses_both_modalities():
    video = np.zeros(25)
    video[0], video[1] = 0.5, 127 / 256
    frames = np.zeros((10, 25))
    frames[:, 0] = 0.5
    frames[:, 1] = 1.0
    so_a, so_v = M.avvp_predictions(video, frames, frames)
    assert so_a.shape == (25, 10)
    np.testing.assert_array_equal(so_a[0], np.ones(10))
    np.testing.assert_array_equal(so_a[1], np.zeros(10))
    np.testing.assert_array_equal(so_a, so_v)


def test_avvp_dense_ground_truth_union_zero_length_and_reversed_rows():
    gt = M.avvp_dense_ground_truth([(0, 2, 11), (2, 6, 11), (2, 6, 11), (6, 10, 11), (9, 9, 0), (9, 0, 4), (9, 10, 4)])
    np.testing.assert_array_equal(gt[11], np.ones(10))
    assert gt[0].sum() == 0
    np.testing.assert_array_equal(gt[4], _row(9, 10))
    with pytest.raises(UserError, match="class index 25"):
        M.avvp_dense_ground_truth([(0, 1, 25)])


def test_avvp_aggregate_is_macro_average_over_clips():
    perfect = M.avvp_clip_scores(_clip({0: [(0, 10)]}), EMPTY, _clip({0: [(0, 10)]}), EMPTY)
    missed = M.avvp_clip_scores(EMPTY, EMPTY, _clip({0: [(0, 10)]}), EMPTY)
    result = M.avvp_aggregate([perfect, missed])
    assert result.segment_level.audio == pytest.approx(50.0)
    assert result.segment_level.visual == pytest.approx(100.0)
    assert result.segment_level.audio_visual == pytest.approx(100.0)  # empty AV GT and prediction: 1.0 rule
    assert result.segment_level.type_at_av == pytest.approx((100.0 + 50.0 + 100.0) / 3)
    assert result.as_dict()["event_level"]["event_at_av"] == pytest.approx(50.0)


def test_avvp_rejects_bad_input():
    with pytest.raises(UserError, match="only 0 and 1"):
        M.avvp_clip_scores(EMPTY + 2, EMPTY, EMPTY, EMPTY)
    with pytest.raises(UserError, match="same shape"):
        M.avvp_clip_scores(EMPTY[:, :5], EMPTY, EMPTY, EMPTY)
    with pytest.raises(UserError, match="frame_prob_v"):
        M.avvp_predictions(np.zeros(25), np.zeros((10, 25)), np.zeros((10, 24)))


# --------------------------------------------------------------------------- AVS golden


def test_avs_golden_runs(avs_golden):
    logits, masks = avs_golden["logits_array"], avs_golden["masks_array"]
    assert len(avs_golden["runs"]) == 4
    for run in avs_golden["runs"]:
        result = M.avs_evaluate(logits, masks, clips_per_batch=run["clips_per_batch"])
        assert [list(b.frames) for b in result.batches] == [b["frames"] for b in run["batches"]]
        for ours, official in zip(result.batches, run["batches"]):
            assert ours.miou == pytest.approx(official["miou"], abs=1e-6)
            assert ours.f_score == pytest.approx(official["f_score"], abs=1e-6)
        assert result.miou == pytest.approx(run["final_miou"], abs=1e-6)
        assert result.f_score == pytest.approx(run["final_f_score"], abs=1e-6)


def test_avs_golden_per_frame(avs_golden):
    logits, masks = avs_golden["logits_array"], avs_golden["masks_array"]
    iou = [M.avs_miou(logits[k : k + 1], masks[k : k + 1]) for k in range(len(logits))]
    f_score = [M.avs_fscore(logits[k : k + 1], masks[k : k + 1]) for k in range(len(logits))]
    np.testing.assert_allclose(iou, avs_golden["per_frame"]["iou"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(f_score, avs_golden["per_frame"]["f_score"], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- AVS hand-made


def _loop_fscore(logits: np.ndarray, masks: np.ndarray) -> float:
    """Direct float32 transcription of the stated rule (threshold loop), to cross-check the sorted counts."""
    import torch

    prob = torch.sigmoid(torch.as_tensor(logits, dtype=torch.float32))
    gt = torch.as_tensor(masks, dtype=torch.float32)
    thresholds = torch.linspace(0, 1 - 1e-10, 255)
    total, frames = torch.zeros(255), 0
    for k in range(len(prob)):
        if torch.mean(gt[k]) == 0.0:
            continue
        curve = torch.zeros(255)
        for j in range(255):
            hit = (prob[k] >= thresholds[j]).float()
            tp = (hit * gt[k]).sum()
            p, r = tp / (hit.sum() + 1e-20), tp / (gt[k].sum() + 1e-20)
            curve[j] = 1.3 * p * r / (0.3 * p + r)
        curve[curve != curve] = 0
        total += curve
        frames += 1
    return float((total / frames).max()) if frames else 0.0


def test_avs_fscore_matches_threshold_loop_on_random_batch():
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 3.0, size=(3, 24, 24)).astype(np.float32)
    masks = (rng.random((3, 24, 24)) < 0.3).astype(np.int64)
    masks[1] = 0  # an empty-GT frame is skipped
    assert M.avs_fscore(logits, masks) == _loop_fscore(logits, masks)


def test_avs_empty_gt_frames():
    masks = np.zeros((2, 4, 4), dtype=np.int64)
    logits = np.full((2, 4, 4), -3.0, dtype=np.float32)
    logits[1, 0, :2] = 3.0  # two false-positive pixels out of 16
    assert M.avs_miou(logits[:1], masks[:1]) == pytest.approx(1.0, abs=1e-6)
    assert M.avs_miou(logits[1:], masks[1:]) == pytest.approx(14 / 16, abs=1e-6)
    assert M.avs_fscore(logits, masks) == 0.0  # all-empty batch scores 0
    # an empty-GT frame adds nothing to the F-score of a batch with a non-empty one
    masks_with_object = masks.copy()
    masks_with_object[1, 0, :2] = 1
    alone = M.avs_fscore(logits[1:], masks_with_object[1:])
    assert alone == pytest.approx(1.0, abs=1e-6)
    assert M.avs_fscore(logits, masks_with_object) == alone


def test_avs_iou_threshold_is_strict_in_float32():
    masks = np.ones((1, 1, 2), dtype=np.int64)
    logits = np.array([[[1e-9, 1.0]]], dtype=np.float32)  # sigmoid(1e-9) rounds to 0.5 in float32
    assert M.avs_miou(logits, masks) == pytest.approx(0.5, abs=1e-6)


def test_avs_fscore_threshold_zero_floor_for_all_negative_prediction():
    masks = np.zeros((1, 10, 10), dtype=np.int64)
    masks[0, :5] = 1  # GT area fraction 0.5
    logits = np.full((1, 10, 10), -8.0, dtype=np.float32)
    assert M.avs_miou(logits, masks) == 0.0
    assert M.avs_fscore(logits, masks) == pytest.approx(1.3 * 0.5 / (0.3 * 0.5 + 1), abs=1e-6)


def test_avs_batch_means_weigh_short_last_batch_as_full():
    miou, f_score = M.avs_batch_means([0.5, 1.0], [0.2, 0.4])
    assert miou == pytest.approx(0.75) and f_score == pytest.approx(0.3)


def test_avs_rejects_bad_input():
    with pytest.raises(UserError, match="only 0 and 1"):
        M.avs_miou(np.zeros((1, 2, 2)), np.full((1, 2, 2), 255))
    with pytest.raises(UserError, match=r"\(N, H, W\)"):
        M.avs_miou(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)))
    with pytest.raises(UserError, match="whole number of clips"):
        M.avs_evaluate(np.zeros((7, 2, 2)), np.zeros((7, 2, 2)), clips_per_batch=1)


# --------------------------------------------------------------------------- classification


def test_ave_segment_accuracy_pools_segments_and_background_is_a_class():
    target = np.array([[28] * 10, [5] * 4 + [28] * 6])
    pred = np.array([[28] * 10, [5] * 2 + [28] * 8])
    assert M.ave_segment_accuracy(pred, target) == pytest.approx(100 * 18 / 20)
    assert M.ave_segment_accuracy(pred, target, foreground_only=True) == pytest.approx(50.0)
    # background-only clip predicted as background is perfect; foreground-only has nothing to score
    assert M.ave_segment_accuracy(pred[:1], target[:1]) == 100.0
    with pytest.raises(UserError, match="no foreground segment"):
        M.ave_segment_accuracy(pred[:1], target[:1], foreground_only=True)
    with pytest.raises(UserError, match="integer class indices"):
        M.ave_segment_accuracy(pred.astype(float), target)


def test_first_label_targets_lowest_index_wins():
    multi_hot = np.zeros((3, 25))
    multi_hot[0, [0, 3]] = 1  # Speech and Dog -> Speech
    multi_hot[1, [24, 9]] = 1
    np.testing.assert_array_equal(M.first_label_targets(multi_hot), [0, 9, 0])  # all-zero row -> 0


def test_first_foreground_targets():
    labels = np.array([[28, 28, 7, 7, 28, 28, 28, 28, 28, 28], [28] * 10, [3] * 10])
    np.testing.assert_array_equal(M.first_foreground_targets(labels), [7, 0, 3])


def test_clip_accuracy_and_hit_rate():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.0, 0.2, 0.9]])
    assert M.clip_accuracy(scores, np.array([1, 1, 2])) == pytest.approx(200 / 3)  # tie -> index 0
    multi_hot = np.array([[0, 1, 1], [0, 1, 0], [1, 0, 0]])
    assert M.multilabel_hit_rate(scores, multi_hot) == pytest.approx(100 / 3)
    with pytest.raises(UserError, match="shape"):
        M.clip_accuracy(scores, np.array([1, 1]))


def test_per_class_and_mean_class_accuracy():
    pred = np.array([0, 0, 1, 2, 2])
    target = np.array([0, 1, 1, 2, 2])
    per_class = M.per_class_accuracy(pred, target, num_classes=4)
    np.testing.assert_allclose(per_class[:3], [100.0, 50.0, 100.0])
    assert np.isnan(per_class[3])
    assert M.mean_class_accuracy(pred, target, num_classes=4) == pytest.approx(250 / 3)


# --------------------------------------------------------------------------- AVQA


def test_avqa_accuracy_pools_per_type_modality_and_overall():
    types = [("Audio", "Counting"), ("Audio", "Counting"), ("Audio", "Comparative"),
             ("Visual", "Location"), ("Audio-Visual", "Temporal"), ("Audio-Visual", "Existential")]
    answers = np.array([1, 2, 3, 4, 5, 6])
    pred = np.array([1, 0, 3, 0, 5, 0])
    result = M.avqa_accuracy(pred, answers, types)
    assert result == pytest.approx({
        "Audio/Comparative": 100.0, "Audio/Counting": 50.0, "Audio": 200 / 3,
        "Visual/Location": 0.0, "Visual": 0.0,
        "Audio-Visual/Existential": 0.0, "Audio-Visual/Temporal": 100.0, "Audio-Visual": 50.0,
        "Overall": 50.0,
    })
    assert list(result)[-1] == "Overall" and list(result)[0] == "Audio"
    assert M.parse_avqa_type('["Audio-Visual", "Counting"]') == ("Audio-Visual", "Counting")
    with pytest.raises(UserError, match="json.loads"):
        M.avqa_accuracy(pred[:1], answers[:1], ['["Audio", "Counting"]'])
