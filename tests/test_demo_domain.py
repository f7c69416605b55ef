"""The demo recordings' domain shift: systematic, per-clip, label-preserving, and part of the demo's currency."""
from __future__ import annotations

import json

import numpy as np

from avfewshot.data.synth import domain, make_dataset
from avfewshot.data.synth import demo as demo_module
from avfewshot.data.synth.concepts import palette


def test_the_cast_moves_a_colour_towards_its_channel_rotation_and_leaves_grey_alone():
    clip = domain.ClipShift(cast=0.5, exposure=1.0, harmonic=0.0, detune=0.0)
    assert clip.colour((255, 0, 0)) == (128, 128, 0)  # red towards olive
    assert clip.colour((0, 0, 255)) == (128, 0, 128)  # blue towards purple
    assert clip.colour(None) is None  # the background stays grey
    darker = domain.ClipShift(cast=0.0, exposure=0.5, harmonic=0.0, detune=0.0)
    assert darker.colour((200, 100, 0)) == (100, 50, 0)
    assert clip.overtones() == ()
    assert domain.ClipShift(0.0, 1.0, 0.4, 3.0).tones([300.0, None]) == [303.0, None]
    assert domain.ClipShift(0.0, 1.0, 0.4, 3.0).overtones() == ((3.0, 0.4),)


def test_the_shift_keeps_the_demo_classes_apart():
    """Distinct classes stay distinct under the same draw: a classifier fitted on shifted clips can learn them."""
    rng = np.random.default_rng(0)
    colours = palette()[:6]
    for _ in range(50):
        clip = domain.DEMO_SHIFT.draw(rng)
        shifted = {clip.colour(c) for c in colours}
        assert len(shifted) == len(colours)
        assert domain.DEMO_SHIFT.cast[0] <= clip.cast <= domain.DEMO_SHIFT.cast[1]


def test_make_dataset_with_a_shift_keeps_the_labels_and_records_it(tmp_path):
    plain = make_dataset("ave", tmp_path / "plain", classes=2, clips_per_class=1, eval_clips_per_class=1, seed=5)
    shifted = make_dataset("ave", tmp_path / "shifted", classes=2, clips_per_class=1, eval_clips_per_class=1,
                           seed=5, shift=domain.DEMO_SHIFT)
    assert [c["labels"] for c in plain["clips"]] == [c["labels"] for c in shifted["clips"]]
    assert "domain_shift" not in plain and shifted["domain_shift"] == domain.DEMO_SHIFT.as_dict()
    plain_video = sorted((tmp_path / "plain" / "video").iterdir())[0].read_bytes()
    shifted_video = sorted((tmp_path / "shifted" / "video").iterdir())[0].read_bytes()
    assert plain_video != shifted_video
    again = make_dataset("ave", tmp_path / "again", classes=2, clips_per_class=1, eval_clips_per_class=1,
                         seed=5, shift=domain.DEMO_SHIFT)
    assert [c["clip_id"] for c in again["clips"]] == [c["clip_id"] for c in shifted["clips"]]
    assert sorted((tmp_path / "again" / "video").iterdir())[0].read_bytes() == shifted_video


def test_a_demo_root_with_other_sizes_or_shift_is_not_current(tmp_path, monkeypatch):
    root = tmp_path / "ave"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"generator_version": demo_module.GENERATOR_VERSION,
                                                    "layout": "raw"}), encoding="ascii")
    assert not demo_module._demo_is_current(root)  # no stamp: an older demo
    (root / demo_module.STAMP).write_text(json.dumps(demo_module._stamp("ave")), encoding="ascii")
    assert demo_module._demo_is_current(root)
    monkeypatch.setitem(demo_module.DEMO_SIZES, "ave", dict(demo_module.DEMO_SIZES["ave"], eval_clips_per_class=1))
    assert not demo_module._demo_is_current(root)
