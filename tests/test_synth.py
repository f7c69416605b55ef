"""Synthetic datasets: official formats and quirks, shared concepts, determinism, and an oracle that
recovers every per-second label from the tensors the Dataset returns."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avfewshot.cli import main as cli_main
from avfewshot.data import synth
from avfewshot.data.annotations import read_annotations
from avfewshot.data.cache import DecodedCache
from avfewshot.data.dataset import AVClipDataset
from avfewshot.data.media import NORM_STATS, MediaSpec
from avfewshot.errors import UserError

SIZES = {
    "ave": dict(classes=6, clips_per_class=1, eval_clips_per_class=1, layout="both"),
    "llp": dict(classes=4, clips_per_class=1, eval_clips_per_class=1, layout="both", wav=True),
    "vggsound": dict(classes=3, clips_per_class=1, eval_clips_per_class=1, layout="raw"),
    "vggsound40k": dict(classes=3, clips_per_class=1, eval_clips_per_class=1, layout="both"),
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    made = {}
    for name, sizes in SIZES.items():
        manifest = synth.make_dataset(name, base / name, seed=7, **sizes)
        made[name] = (base / name, manifest)
    return made


def by_id(manifest):
    return {clip["clip_id"]: clip for clip in manifest["clips"]}


# ---------------------------------------------------------------------------------------------
# formats and quirks (read back by the real readers)
# ---------------------------------------------------------------------------------------------


def test_ave_format_and_quirks(roots):
    root, manifest = roots["ave"]
    text = (root / "Annotations.txt").read_text()
    assert text.splitlines()[0] == "Category&VideoID&Quality&StartTime&EndTime"
    assert (root / "categories.txt").read_text().splitlines() == list(synth.AVE_CLASS_NAMES[:6])
    assert not (root / "trainSet.txt").read_text().startswith("Category")
    annotations = read_annotations("ave", root)
    clips = by_id(manifest)
    assert {r.clip_id for r in annotations.records} == set(clips)
    background = len(annotations.class_names)
    for record in annotations.records:
        clip = clips[record.clip_id]
        assert list(record.labels) == clip["labels"] and record.split == clip["split"]
        if not clip["shared_media"]:
            assert clip["audio"] == clip["visual"]
            assert list(record.segment_labels) == [c if c >= 0 else background for c in clip["audio"]]
    zero = [r for r in annotations.records if r.extra["no_foreground"]]
    assert len(zero) == 1 and zero[0].labels == (0,) and zero[0].split == "train"
    shared = [r for r in annotations.records if "#" in r.clip_id]
    assert sorted((r.split, r.labels) for r in shared) == [("train", (1,)), ("val", (5,))]
    assert shared[0].media_id == shared[1].media_id
    assert any("two splits" in p for p in annotations.problems)
    assert any("," in name for name in annotations.class_names)
    assert any(r.media_id.startswith("-") for r in annotations.records)


def test_llp_format_and_quirks(roots):
    root, manifest = roots["llp"]
    annotations = read_annotations("llp", root)
    clips = by_id(manifest)
    assert {r.clip_id for r in annotations.records} == set(clips)
    for name in ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv", "AVVP_dataset_full.csv"):
        assert (root / name).read_text().startswith("filename\tevent_labels\n")
    assert (root / "AVVP_eval_audio.csv").read_text().startswith("filename\tonset\toffset\tevent_labels\n")
    ids = [r.clip_id for r in annotations.records]
    assert any(i.endswith("_101.8_111.8") for i in ids)
    assert any(r.media_id.startswith("-") for r in annotations.records)
    assert any("_" in r.media_id for r in annotations.records)
    assert all(r.media_id == r.clip_id[:11] for r in annotations.records)
    test_rows = (root / "AVVP_test_pd.csv").read_text().splitlines()[1:]
    duplicated = [row for row in test_rows if len(set(row.split("\t")[1].split(","))) < len(row.split("\t")[1].split(","))]
    assert len(duplicated) == 1
    assert any(len(r.labels) == 2 for r in annotations.records)
    problems = " | ".join(annotations.problems)
    assert "name no clip" in problems and "zero-length" in problems and "reversed" in problems
    for record in annotations.records:
        clip = clips[record.clip_id]
        assert list(record.labels) == clip["labels"]
        assert set(clip["labels"]) == {c for c in clip["audio"] + clip["visual"] if c >= 0}
        if record.split in ("val", "test"):
            for key, modality in (("audio_events", "audio"), ("visual_events", "visual")):
                matrix = np.asarray(record.extra[key])
                expected = np.zeros_like(matrix)
                for t, c in enumerate(clip[modality]):
                    if c >= 0:
                        expected[t, c] = 1
                assert np.array_equal(matrix, expected), (record.clip_id, key)
    # audio-only and visual-only seconds both exist
    seconds = [(a, v) for c in manifest["clips"] for a, v in zip(c["audio"], c["visual"])]
    assert any(a >= 0 and v < 0 for a, v in seconds) and any(v >= 0 and a < 0 for a, v in seconds)


def test_vggsound_formats(roots):
    root, manifest = roots["vggsound"]
    text = (root / "vggsound.csv").read_text()
    assert '"' in text or all("," not in n for n in manifest["class_names"])
    annotations = read_annotations("vggsound", root)
    assert annotations.class_names == manifest["class_names"] == sorted(manifest["class_names"])
    clips = by_id(manifest)
    assert all(list(r.labels) == clips[r.clip_id]["labels"] for r in annotations.records)

    root, manifest = roots["vggsound40k"]
    lines = (root / "vggsound-avel40k_labels.csv").read_text().splitlines()
    assert lines[0] == ",clip_name,category,video_id,label,split"
    assert lines[1].split(",")[3] == "000000" or '"' in lines[1]
    annotations = read_annotations("vggsound40k", root)
    clips = by_id(manifest)
    background = len(annotations.class_names)
    for record in annotations.records:
        clip = clips[record.clip_id]
        assert list(record.segment_labels) == [c if c >= 0 else background for c in clip["audio"]]
    assert {r.split for r in annotations.records} == {"train", "val", "test"}


# ---------------------------------------------------------------------------------------------
# the oracle through the Dataset
# ---------------------------------------------------------------------------------------------


def unnormalise(frames, norm):
    mean, std = NORM_STATS[norm]
    x = frames.numpy() * np.asarray(std, np.float32)[:, None, None] + np.asarray(mean, np.float32)[:, None, None]
    return np.moveaxis(x * 255.0, 1, -1)  # (T, H, W, 3) in 0..255


@pytest.mark.parametrize(
    "name, layout",
    [("ave", "raw"), ("ave", "dgsct"), ("llp", "raw"), ("llp", "dgsct"), ("vggsound", "raw"),
     ("vggsound40k", "raw"), ("vggsound40k", "dgsct")],
)
def test_oracle_recovers_every_per_second_label(roots, tmp_path, name, layout):
    root, manifest = roots[name]
    annotations = read_annotations(name, root)
    rate = 48000 if name == "ave" else 32000
    spec = MediaSpec(image_size=24, audio_rate=rate, image_norm="clip")
    data = AVClipDataset(annotations.records, len(annotations.class_names), root, spec, layout=layout,
                         cache=DecodedCache(tmp_path / "cache"))
    clips = by_id(manifest)
    for index in range(len(data)):
        item = data[index]
        truth = clips[item["clip_id"]]
        visual, audio = synth.oracle_labels(manifest, unnormalise(item["frames"], "clip"), item["audio"].numpy(), rate)
        assert visual == truth["visual"], (item["clip_id"], "visual")
        assert audio == truth["audio"], (item["clip_id"], "audio")
        if name in ("ave", "vggsound40k") and not truth["shared_media"]:
            seconds = [c if c >= 0 else len(annotations.class_names) for c in audio]
            assert item["segment_labels"].tolist() == seconds
    if layout == "raw" and name == "ave":
        assert any(c["stereo"] for c in manifest["clips"])  # 44.1 kHz stereo variants are covered


# ---------------------------------------------------------------------------------------------
# concepts, determinism, CLI, demo
# ---------------------------------------------------------------------------------------------


def test_concepts_are_shared_across_datasets():
    names = synth.vggsound40k_class_names()
    assert len(names) == 141 and len(set(names)) == 141
    assert len(set(synth.palette())) == 141 and synth.GREY not in synth.palette()
    assert len({synth.tone_hz(i) for i in range(141)}) == 141
    dog = {synth.class_signature("ave", "Bark"), synth.class_signature("llp", "Dog"),
           synth.class_signature("vggsound40k", "dog barking")}
    assert len(dog) == 1
    shared = [c for c in synth.CONCEPTS if c.ave and c.llp]
    assert len(shared) >= 10
    for concept in shared:
        assert synth.class_signature("ave", concept.ave) == synth.class_signature("llp", concept.llp) == \
            synth.class_signature("vggsound40k", concept.vgg)
    # every AVE and LLP class has a concept inside the 40K list
    covered = {synth.concept_index("vggsound40k", n) for n in names}
    assert all(synth.concept_index("ave", n) in covered for n in synth.AVE_CLASS_NAMES)
    assert all(synth.concept_index("llp", n) in covered for n in synth.LLP_CLASS_NAMES)
    # the first 12 40K classes hold every concept of the AVE and LLP demos
    demo = {synth.concept_index("vggsound40k", n) for n in names[: synth.DEMO_SIZES["vggsound40k"]["classes"]]}
    assert {synth.concept_index("ave", n) for n in synth.AVE_CLASS_NAMES[: synth.DEMO_SIZES["ave"]["classes"]]} <= demo
    assert {synth.concept_index("llp", n) for n in synth.LLP_CLASS_NAMES[: synth.DEMO_SIZES["llp"]["classes"]]} <= demo


def test_same_seed_same_bytes_and_tensors(tmp_path):
    from avfewshot.data.media import load_clip

    sizes = dict(classes=2, clips_per_class=1, eval_clips_per_class=1)
    a = synth.make_dataset("llp", tmp_path / "a", seed=3, **sizes)
    synth.make_dataset("llp", tmp_path / "b", seed=3, **sizes)
    synth.make_dataset("llp", tmp_path / "c", seed=4, **sizes)
    for name in a["annotation_files"] + ["manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "AVVP_train.csv").read_bytes() != (tmp_path / "c" / "AVVP_train.csv").read_bytes()
    spec = MediaSpec(image_size=16, audio_rate=16000)
    for clip in a["clips"]:
        x = load_clip(tmp_path / "a", clip["media_id"], spec)
        y = load_clip(tmp_path / "b", clip["media_id"], spec)
        assert np.array_equal(x.frames, y.frames) and np.array_equal(x.audio, y.audio)


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="valid datasets"):
        synth.make_dataset("avqa", tmp_path)
    with pytest.raises(UserError, match="between 1 and 28"):
        synth.make_dataset("ave", tmp_path, classes=29)
    with pytest.raises(UserError, match="layout"):
        synth.make_dataset("ave", tmp_path, layout="zip")


def test_cli_synth_then_check(tmp_path, capsys):
    root = tmp_path / "vgg"
    assert cli_main(["data", "synth", "--dataset", "vggsound40k", "--root", str(root), "--classes", "2",
                     "--clips-per-class", "1", "--seed", "2"]) == 0
    assert json.loads((root / "manifest.json").read_text())["dataset"] == "vggsound40k"
    report = tmp_path / "report.json"
    assert cli_main(["data", "check", "--dataset", "vggsound40k", "--root", str(root), "--report", str(report)]) == 0
    assert json.loads(report.read_text())["usable"] is True
    assert "usable" in capsys.readouterr().out


def test_ensure_demo_builds_once_atomically(monkeypatch):
    from avfewshot.paths import demo_dir

    monkeypatch.setitem(synth.DEMO_SIZES, "ave", {"classes": 2, "clips_per_class": 1, "eval_clips_per_class": 1})
    root = synth.ensure_demo("ave")
    assert root == demo_dir() / "ave" and (root / "manifest.json").is_file()
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert synth.ensure_demo("ave") == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # not rebuilt
    assert not [p for p in demo_dir().iterdir() if p.name.startswith(".")]  # no temp folders left
    assert len(read_annotations("ave", root).records) == len(synth.load_manifest(root)["clips"])
    with pytest.raises(UserError, match="no demo"):
        synth.ensure_demo("avqa")


def test_supervised_demo_roots_are_rebuilt_when_the_generator_or_settings_change(tmp_path, monkeypatch):
    import json

    from avfewshot.data.synth import supervised_demo

    built = []

    def fake_writer(name):
        def write(root):
            built.append(name)
            (root / "content.txt").write_text(str(len(built)))
        return write

    monkeypatch.setenv("AVFEWSHOT_CACHE", str(tmp_path))
    monkeypatch.setattr(supervised_demo, "_writer", fake_writer)
    root = supervised_demo.ensure_supervised_demo("avqa")
    assert supervised_demo.ensure_supervised_demo("avqa") == root and built == ["avqa"]  # reused
    marker = json.loads((root / supervised_demo.MARKER).read_text())
    assert marker["generator"] and marker["settings"] == supervised_demo.SUPERVISED_DEMOS["avqa"]
    (root / supervised_demo.MARKER).write_text(json.dumps({**marker, "generator": "an older generator"}))
    supervised_demo.ensure_supervised_demo("avqa")
    assert built == ["avqa", "avqa"] and (root / "content.txt").read_text() == "2"  # rebuilt in place
