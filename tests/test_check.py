"""The dataset check: a clean synthetic root is usable; every kind of damage is reported by file."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from avfewshot.cli import main as cli_main
from avfewshot.data import synth
from avfewshot.data.check import check_root
from avfewshot.data.media import MediaSpec


@pytest.fixture(scope="module")
def clean_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("check")
    synth.make_dataset("ave", base / "ave", classes=2, clips_per_class=2, eval_clips_per_class=1, seed=5, layout="both")
    synth.make_dataset("llp", base / "llp", classes=2, clips_per_class=1, eval_clips_per_class=1, seed=5)
    return base


@pytest.fixture()
def ave_root(clean_roots, tmp_path):
    root = tmp_path / "ave"
    shutil.copytree(clean_roots / "ave", root)
    return root


def media_ids(root):
    return [c["media_id"] for c in synth.load_manifest(root)["clips"]]


@pytest.mark.parametrize("name, layout", [("ave", "raw"), ("ave", "dgsct"), ("llp", "raw")])
def test_synthetic_roots_pass(clean_roots, name, layout):
    report = check_root(name, clean_roots / name, layout)
    assert report.usable, report.format()
    assert report.clips == len(synth.load_manifest(clean_roots / name)["clips"])
    assert report.media_ok == report.media and report.bad_clips == 0
    assert not report.problems
    if name == "llp":  # the reader's reported oddities are notes, not failures
        assert any("zero-length" in n for n in report.annotation_notes)


def test_damaged_media_is_reported_with_the_file_named(ave_root, tmp_path):
    ids = media_ids(ave_root)
    video = ave_root / "video"
    damage = {
        "undecodable": ids[0],
        "empty": ids[1],
        "missing": ids[2],
        "no_audio": ids[3],
        "too_short": ids[4],
    }
    data = (video / f"{ids[0]}.mp4").read_bytes()
    (video / f"{ids[0]}.mp4").write_bytes(data[: len(data) // 3])
    (video / f"{ids[1]}.mp4").write_bytes(b"")
    (video / f"{ids[2]}.mp4").unlink()
    synth.write_mp4(video / f"{ids[3]}.mp4", [None] * 10, [None] * 10, audio=False)
    synth.write_mp4(video / f"{ids[4]}.mp4", [None] * 10, [None] * 10, seconds=3)

    report = check_root("ave", ave_root, "raw")
    assert not report.usable
    assert report.bad_clips == 5 and report.media_ok == report.media - 5
    by_kind = {p.kind: p for p in report.problems}
    assert set(by_kind) == set(damage)
    for kind, media_id in damage.items():
        assert f"{media_id}.mp4" in by_kind[kind].message and by_kind[kind].fatal
    assert "3.00 s long" in by_kind["too_short"].message

    text = report.format()
    assert any(line.startswith("usable") and line.endswith("NO") for line in text.splitlines())
    assert sum(line.startswith("error [") for line in text.splitlines()) == 5

    path = report.write_json(tmp_path / "out" / "report.json")
    saved = json.loads(path.read_text())
    assert saved["usable"] is False and saved["summary"] == {k: 1 for k in damage}
    assert len(saved["problems"]) == 5

    assert report.clips == 8
    assert check_root("ave", ave_root, "raw", tolerate=0.7).usable  # 5 of 8 clips bad
    assert not check_root("ave", ave_root, "raw", tolerate=0.6).usable
    padded = check_root("ave", ave_root, "raw", MediaSpec(image_size=32, audio_rate=16000, pad_short=True))
    assert "padded" in {p.kind for p in padded.problems} and "too_short" not in {p.kind for p in padded.problems}


def test_dgsct_layout_problems(ave_root):
    ids = media_ids(ave_root)
    frames = sorted((ave_root / "frames" / ids[0]).iterdir())
    for jpg in frames[5:]:
        jpg.unlink()
    np.save(ave_root / "wave" / f"{ids[1]}.npy", np.zeros(1000, np.float32))
    (ave_root / "frames" / ids[2] / "00000005.jpg").write_bytes(b"\xff\xd8 broken")
    report = check_root("ave", ave_root, "dgsct")
    assert not report.usable
    messages = {p.kind: p.message for p in report.problems}
    assert "5 frame file(s), at least 10 are needed" in messages["frame_count"] and ids[0] in messages["frame_count"]
    assert f"{ids[1]}.npy" in messages["too_short"] and "1000 samples" in messages["too_short"]
    assert "00000005.jpg" in messages["undecodable"]


def test_malformed_annotation_rows_make_the_root_unusable(ave_root, tmp_path, capsys):
    with open(ave_root / "valSet.txt", "a") as handle:
        handle.write("Church bell&abcdefghijk&good&4\n")
    report = check_root("ave", ave_root, "raw")
    assert not report.usable
    assert report.problems[0].kind == "annotations"
    assert "valSet.txt, line" in report.problems[0].message and "expected 5" in report.problems[0].message

    out = tmp_path / "r.json"
    assert cli_main(["data", "check", "--dataset", "ave", "--root", str(ave_root), "--report", str(out)]) == 1
    assert "valSet.txt, line" in capsys.readouterr().out
    assert json.loads(out.read_text())["usable"] is False


def test_cli_check_exit_codes(clean_roots, tmp_path):
    assert cli_main(["data", "check", "--dataset", "llp", "--root", str(clean_roots / "llp")]) == 0
    assert cli_main(["data", "check", "--dataset", "llp", "--root", str(tmp_path / "nowhere")]) == 1
