"""The k-shot split generator on the real AVE / LLP annotation files."""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pytest

from avfewshot.commands import splits as split_commands
from avfewshot.data.annotations import read_ave, read_llp
from avfewshot.data.splits import (
    GENERATOR_VERSION,
    load_split,
    make_split,
    make_splits,
    sha256_file,
    split_records,
    write_split,
)
from avfewshot.errors import AnnotationError, UserError


@pytest.fixture(scope="module")
def ave(shared_data):
    return read_ave(shared_data / "AVE")


@pytest.fixture(scope="module")
def llp(shared_data):
    return read_llp(shared_data / "LLP")


def ids(entries):
    return [e["clip_id"] for e in entries]


# ------------------------------------------------------------------------------------ dgsct


def test_dgsct_llp_16_shots(llp):
    split = make_split(llp, 16, seed=1, protocol="dgsct")
    train = split["train"]
    assert len(train) == 384
    per_class = Counter(e["sampled_for"] for e in train)
    assert len(per_class) == 24 and set(per_class.values()) == {16}
    assert 0 not in per_class and split["uncovered_classes"] == ["Speech"]
    assert all(len(e["labels"]) == 1 and e["labels"] == [e["sampled_for"]] for e in train)
    cat = [e["clip_id"] for e in train if e["sampled_for"] == 4]
    assert cat[0] == "1bdZx2gFZ2w_30_40"
    # first K single-label rows of each class, in file order
    singles = [r for r in llp.split("train") if len(r.labels) == 1]
    for c in per_class:
        assert [e["clip_id"] for e in train if e["sampled_for"] == c] == [
            r.clip_id for r in singles if r.labels == (c,)
        ][:16]
    val_ids = {r.clip_id for r in llp.split("val")}
    assert split["val"] and all(e["clip_id"] in val_ids for e in split["val"])
    assert all(e["sampled_for"] != 0 for e in split["val"])  # Speech is left out of validation too


def test_dgsct_ave_16_shots(ave):
    split = make_split(ave, 16, seed=3, protocol="dgsct")
    assert len(split["train"]) == 448 == 28 * 16
    assert set(Counter(e["sampled_for"] for e in split["train"]).values()) == {16}
    by_id = {r.clip_id: r for r in ave.records}
    church = [by_id[e["clip_id"]].extra["annotation_row"] for e in split["train"] if e["sampled_for"] == 0]
    assert church[:2] == [40, 30]
    assert split["shortfalls"] == [] and split["uncovered_classes"] == []


def test_dgsct_more_shots_than_a_class_has(llp):
    with pytest.raises(UserError, match=r"class 'Cat' has 16 of 17.*--allow-fewer"):
        make_split(llp, 17, seed=1, protocol="dgsct")
    split = make_split(llp, 17, seed=1, protocol="dgsct", allow_fewer=True)
    train_short = [s for s in split["shortfalls"] if s["subset"] == "train"]
    assert {"subset": "train", "class": 4, "class_name": "Cat", "requested": 17, "available": 16} in train_short
    assert sum(e["sampled_for"] == 4 for e in split["train"]) == 16
    assert sum(e["sampled_for"] == 10 for e in split["train"]) == 17  # Banjo has 17


# ------------------------------------------------------------------------------------- coop


@pytest.mark.parametrize("name", ["ave", "llp"])
def test_coop_deterministic_and_seeded(name, request):
    annotations = request.getfixturevalue(name)
    a = make_split(annotations, 4, seed=1)
    b = make_split(annotations, 4, seed=1)
    c = make_split(annotations, 4, seed=2)
    assert a == b
    assert set(ids(a["train"])) != set(ids(c["train"]))
    assert set(ids(a["val"])) != set(ids(c["val"]))
    n = len(annotations.class_names)
    assert Counter(e["sampled_for"] for e in a["train"]) == {k: 4 for k in range(n)}


@pytest.mark.parametrize("name", ["ave", "llp"])
def test_coop_never_uses_test_clips_and_val_comes_from_val(name, request):
    annotations = request.getfixturevalue(name)
    test_ids = {r.clip_id for r in annotations.split("test")}
    test_media = {r.media_id for r in annotations.split("test")}
    train_ids = {r.clip_id for r in annotations.split("train")}
    val_ids = {r.clip_id for r in annotations.split("val")}
    for seed in (1, 2, 3):
        split = make_split(annotations, 16, seed=seed)
        train, val = ids(split["train"]), ids(split["val"])
        assert len(set(train)) == len(train) and len(set(val)) == len(val)
        assert set(train) <= train_ids and set(val) <= val_ids
        assert not (set(train) | set(val)) & test_ids
        assert not {e["media_id"] for e in split["train"] + split["val"]} & test_media
        assert Counter(e["sampled_for"] for e in split["val"]) == {c: 4 for c in range(len(annotations.class_names))}


def test_coop_ave_excludes_videos_shared_with_test(ave):
    split = make_split(ave, 1, seed=1)
    (note,) = [n for n in split["notes"] if "share their video with a test clip" in n]
    assert "0f_iTO5t3hU#" in note


def test_coop_multilabel_labels_kept_and_shots_nested(llp):
    by_id = {r.clip_id: r for r in llp.records}
    small = make_split(llp, 2, seed=5)
    large = make_split(llp, 8, seed=5)
    for entry in large["train"]:
        assert tuple(entry["labels"]) == by_id[entry["clip_id"]].labels
        assert entry["sampled_for"] in entry["labels"]
    assert any(len(e["labels"]) > 1 for e in large["train"])
    assert sum(e["sampled_for"] == 0 for e in large["train"]) == 8  # Speech is covered under coop
    nested = sum(e["clip_id"] in set(ids(large["train"])) for e in small["train"])
    assert nested >= 0.9 * len(small["train"])


def test_coop_does_not_depend_on_record_order(llp):
    from dataclasses import replace

    shuffled = replace(llp, records=list(reversed(llp.records)))
    assert make_split(shuffled, 2, seed=9) == make_split(llp, 2, seed=9)


def test_bad_arguments(llp):
    with pytest.raises(UserError, match="valid protocols: coop, dgsct"):
        make_split(llp, 1, seed=1, protocol="random")
    with pytest.raises(UserError, match="positive integer"):
        make_split(llp, 0, seed=1)


# ------------------------------------------------------------------------------------ files


def test_split_files_byte_identical_across_runs(tmp_path, shared_data):
    first = make_splits("llp", shared_data / "LLP", [1, 4], [1, 2], out_dir=tmp_path / "a")
    second = make_splits("llp", shared_data / "LLP", [1, 4], [1, 2], out_dir=tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    assert first[0] == tmp_path / "a" / "llp" / "coop" / "shot_1-seed_1.json"
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes().endswith(b"}\n")
    assert first[0].read_bytes() != first[1].read_bytes()  # seeds differ
    assert not list((tmp_path / "a").rglob("*.tmp"))


def test_split_file_contents(tmp_path, shared_data, ave):
    (path,) = make_splits("ave", shared_data / "AVE", [2], [7], protocol="dgsct", out_dir=tmp_path)
    split = load_split(path, root=shared_data / "AVE", strict=True)
    assert path == tmp_path / "ave" / "dgsct" / "shot_2-seed_7.json"
    assert (split["dataset"], split["protocol"], split["shots"], split["seed"]) == ("ave", "dgsct", 2, 7)
    assert split["generator_version"] == GENERATOR_VERSION
    assert split["annotation_files"] == {
        name: sha256_file(shared_data / "AVE" / name)
        for name in ("categories.txt", "Annotations.txt", "trainSet.txt", "valSet.txt", "testSet.txt")
    }
    records = split_records(split, ave, "train")
    assert [r.clip_id for r in records] == ids(split["train"])
    assert all(r.split == "train" for r in records)
    assert all(r.split == "val" for r in split_records(split, ave, "val"))


def test_load_split_checks_hashes(tmp_path, shared_data):
    root = tmp_path / "LLP"
    root.mkdir()
    for name in ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv"):
        (root / name).write_bytes((shared_data / "LLP" / name).read_bytes())
    split = make_split(read_llp(root), 1, seed=1)
    path = write_split(split, tmp_path / "splits")
    assert load_split(path, root=root, strict=True) == split
    with (root / "AVVP_test_pd.csv").open("a") as f:
        f.write("zzzzzzzzzzz_0_10\tDog\n")
    with pytest.warns(UserWarning, match="AVVP_test_pd.csv differs"):
        load_split(path, root=root)
    with pytest.raises(AnnotationError, match="AVVP_test_pd.csv differs"):
        load_split(path, root=root, strict=True)


def test_load_split_rejects_bad_files(tmp_path, llp):
    path = write_split(make_split(llp, 1, seed=1), tmp_path)
    data = json.loads(path.read_text())
    data["train"][0]["labels"] = [99]
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"train\[0\].*not class indices"):
        load_split(path)
    del data["train"]
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match="lacks train"):
        load_split(path)
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match="not a valid split file"):
        load_split(path)
    with pytest.raises(UserError, match="split file not found"):
        load_split(tmp_path / "missing.json")


# -------------------------------------------------------------------------------------- CLI


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="avfewshot")
    split_commands.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_files_and_records_shortfall(tmp_path, shared_data, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["splits", "make", "--dataset", "llp", "--root", str(shared_data / "LLP"),
            "--shots", "17", "--seeds", "1", "--protocol", "dgsct"]
    with pytest.raises(UserError, match="Cat"):
        run_cli(argv)
    assert not (tmp_path / "splits").exists()
    assert run_cli(argv + ["--allow-fewer"]) == 0
    path = tmp_path / "splits" / "llp" / "dgsct" / "shot_17-seed_1.json"
    assert f"wrote {Path('splits') / 'llp' / 'dgsct' / 'shot_17-seed_1.json'}" in capsys.readouterr().out
    split = load_split(path)
    assert any(s["class_name"] == "Cat" and s["available"] == 16 for s in split["shortfalls"])


def test_cli_same_arguments_same_bytes(tmp_path, shared_data):
    argv = ["splits", "make", "--dataset", "ave", "--root", str(shared_data / "AVE"), "--shots", "1", "2",
            "--seeds", "1", "2"]
    assert run_cli(argv + ["--out", str(tmp_path / "x")]) == 0
    assert run_cli(argv + ["--out", str(tmp_path / "y")]) == 0
    files = sorted((tmp_path / "x").rglob("*.json"))
    assert len(files) == 4
    for f in files:
        assert f.read_bytes() == (tmp_path / "y" / f.relative_to(tmp_path / "x")).read_bytes()
