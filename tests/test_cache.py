"""Decoded-input cache and the torch Dataset: hits, keys, atomic writes, corruption, workers, skips."""
from __future__ import annotations

import logging
import os
import pickle
import shutil
from dataclasses import replace


import avfewshot.data.cache as cache_module
import pytest
import torch

from avfewshot.data import dataset as dataset_module
from avfewshot.data import synth
from avfewshot.data.annotations import read_annotations
from avfewshot.data.cache import DecodedCache, clip_key
from avfewshot.data.dataset import AVClipDataset, collate_clips, decode_all
from avfewshot.data.media import MediaSpec, find_media
from avfewshot.errors import MediaError
from avfewshot.paths import decoded_cache_dir

SPEC = MediaSpec(image_size=32, audio_rate=16000, image_norm="imagenet")


@pytest.fixture(scope="module")
def ave_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-ave")
    synth.make_dataset("ave", root, classes=3, clips_per_class=1, eval_clips_per_class=1, seed=11)
    return root


@pytest.fixture()
def ave(ave_root, tmp_path):
    """A private copy (tests below corrupt files) and its annotations."""
    root = tmp_path / "ave"
    shutil.copytree(ave_root, root)
    return root, read_annotations("ave", root)


def make_dataset(root, annotations, cache, **kwargs):
    kwargs.setdefault("spec", SPEC)
    return AVClipDataset(annotations.records, len(annotations.class_names), root, cache=cache, **kwargs)


def test_second_pass_decodes_nothing_and_returns_the_same_tensors(ave, tmp_path, monkeypatch):
    root, annotations = ave
    cache = DecodedCache(tmp_path / "cache")
    data = make_dataset(root, annotations, cache)
    first = [data[i] for i in range(len(data))]
    assert cache.misses == len(data) and cache.hits == 0
    assert len(list((tmp_path / "cache").rglob("*.clip"))) == len(data)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds the clip")

    monkeypatch.setattr(dataset_module, "decode_clip", no_decoding)
    cache.reset_stats()
    second = [data[i] for i in range(len(data))]
    assert cache.hits == len(data) and cache.misses == 0
    for a, b in zip(first, second):
        assert a["cache_key"] == b["cache_key"]
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["audio"], b["audio"])


def test_every_parameter_and_the_file_identity_change_the_key(ave, tmp_path):
    root, annotations = ave
    files = find_media(root, annotations.records[0].media_id)
    base = clip_key(files, SPEC)
    assert clip_key(files, SPEC) == base  # stable
    variants = [
        replace(SPEC, image_size=33), replace(SPEC, image_norm="clip"), replace(SPEC, frame_position=0.25),
        replace(SPEC, audio_rate=48000), replace(SPEC, antialias=True), replace(SPEC, audio_source="video"),
        replace(SPEC, audio_offset=0.01), replace(SPEC, pad_short=True), replace(SPEC, resize_mode="bilinear"),
        replace(SPEC, short_tolerance=0.25), replace(SPEC, num_segments=9),
    ]
    keys = {clip_key(files, v) for v in variants}
    assert len(keys) == len(variants) and base not in keys

    cache = DecodedCache(tmp_path / "cache")
    data = make_dataset(root, annotations, cache)
    data[0]
    changed = make_dataset(root, annotations, cache, spec=replace(SPEC, frame_position=0.0))
    item = changed[0]
    assert cache.misses == 2 and cache.hits == 0  # a changed parameter never reuses the old entry
    assert item["cache_key"] != data[0]["cache_key"]

    stat = files.video.stat()
    os.utime(files.video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert clip_key(files, SPEC) != base  # touched file: new key


def test_content_hash_keys_survive_moving_the_dataset(ave, tmp_path):
    root, annotations = ave
    media_id = annotations.records[0].media_id
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    a, b = find_media(root, media_id), find_media(moved, media_id)
    assert clip_key(a, SPEC) != clip_key(b, SPEC)
    assert clip_key(a, SPEC, content_hash=True) == clip_key(b, SPEC, content_hash=True)


def test_half_written_and_corrupt_entries_are_never_used(ave, tmp_path, caplog):
    root, annotations = ave
    cache = DecodedCache(tmp_path / "cache")
    data = make_dataset(root, annotations, cache)
    reference = data[0]
    key = reference["cache_key"]
    path = cache.path(key)
    good_bytes = path.read_bytes()

    # a crash mid-write leaves only a temporary file: the entry does not exist yet
    path.unlink()
    (path.parent / f".{key[:16]}-crashed.tmp").write_bytes(good_bytes[: len(good_bytes) // 2])
    assert cache.get(key, SPEC) is None and cache.recovered == 0

    # a truncated or garbage entry under the final name is detected, deleted and recomputed
    for damaged in (good_bytes[: len(good_bytes) // 2], b"\x00" * 1000, good_bytes[:-10]):
        path.write_bytes(damaged)
        with caplog.at_level(logging.WARNING, logger="avfewshot"):
            item = data[0]
        assert torch.equal(item["frames"], reference["frames"]) and torch.equal(item["audio"], reference["audio"])
        assert path.read_bytes() == good_bytes
    assert cache.recovered == 3 and "is corrupt" in caplog.text

    # an entry with the wrong shapes (e.g. written by another spec) is rejected as well
    other = DecodedCache(tmp_path / "cache")
    assert other.get(key, replace(SPEC, image_size=64)) is None and other.recovered == 1


def test_a_failed_write_leaves_no_entry_and_no_temporary_file(ave, tmp_path, monkeypatch):
    root, annotations = ave
    cache = DecodedCache(tmp_path / "cache")

    def broken_write(handle, key, clip):
        handle.write(b"AVFCLIP1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(cache_module, "_write_entry", broken_write)
    item = make_dataset(root, annotations, cache)[0]  # still returns the decoded clip
    assert item["frames"].shape == (10, 3, 32, 32)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_disabled_cache_writes_nothing_and_default_location(ave, tmp_path):
    root, annotations = ave
    cache = DecodedCache(tmp_path / "off", enabled=False)
    item = make_dataset(root, annotations, cache)[0]
    assert len(item["cache_key"]) == 64
    assert not (tmp_path / "off").exists()
    assert DecodedCache().root == decoded_cache_dir()  # $AVFEWSHOT_CACHE/decoded in tests


def test_items_follow_the_batch_contract(ave, tmp_path):
    root, annotations = ave
    data = make_dataset(root, annotations, DecodedCache(tmp_path / "cache"))
    batch = collate_clips([data[i] for i in range(3)])
    C = len(annotations.class_names)
    assert batch["index"].dtype == torch.int64 and batch["index"].tolist() == [0, 1, 2]
    assert batch["clip_id"] == [r.clip_id for r in annotations.records[:3]]
    assert batch["frames"].shape == (3, 10, 3, 32, 32) and batch["frames"].dtype == torch.float32
    assert batch["audio"].shape == (3, 10, 16000) and batch["audio"].dtype == torch.float32
    assert batch["labels"].shape == (3, C) and batch["labels"].sum(dim=1).tolist() == [1.0, 1.0, 1.0]
    assert batch["segment_labels"].dtype == torch.int64 and batch["segment_labels"].shape == (3, 10)
    for row, record in zip(batch["segment_labels"].tolist(), annotations.records[:3]):
        assert row == list(record.segment_labels)  # background = C
    no_background = make_dataset(root, annotations, DecodedCache(tmp_path / "cache"), background=False)
    zero = next(i for i, r in enumerate(annotations.records) if r.extra.get("no_foreground"))
    assert no_background[zero]["segment_labels"].tolist() == [-1] * 10


def test_dataloader_with_two_workers(ave, tmp_path):
    from torch.utils.data import DataLoader

    root, annotations = ave
    data = make_dataset(root, annotations, DecodedCache(tmp_path / "cache"))
    clone = pickle.loads(pickle.dumps(data))
    assert len(clone) == len(data)
    loader = DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate_clips)
    seen = []
    for batch in loader:
        assert batch["frames"].shape[1:] == (10, 3, 32, 32)
        seen.extend(batch["clip_id"])
    assert seen == [r.clip_id for r in annotations.records]
    assert len(list((tmp_path / "cache").rglob("*.clip"))) == len({r.media_id for r in annotations.records})


def test_skip_reports_a_corrupt_clip_once_and_collate_drops_it(ave, tmp_path, caplog):
    from torch.utils.data import DataLoader

    root, annotations = ave
    bad = annotations.records[1]
    victim = root / "video" / f"{bad.media_id}.mp4"
    victim.write_bytes(victim.read_bytes()[:500])
    affected = {r.clip_id for r in annotations.records if r.media_id == bad.media_id}

    strict = make_dataset(root, annotations, DecodedCache(tmp_path / "cache"))
    with pytest.raises(MediaError, match=bad.media_id):
        strict[1]

    data = make_dataset(root, annotations, DecodedCache(tmp_path / "cache"), on_error="skip")
    with caplog.at_level(logging.WARNING, logger="avfewshot"):
        assert data[1] is None
        assert data[1] is None
    assert caplog.text.count(f"skipping clip {bad.clip_id}") == 1 and victim.name in caplog.text
    batch = collate_clips([data[0], data[1], data[2]])
    assert batch["clip_id"] == [annotations.records[0].clip_id, annotations.records[2].clip_id]
    assert collate_clips([None, None]) is None

    fresh = make_dataset(root, annotations, DecodedCache(tmp_path / "cache"), on_error="skip")
    assert set(decode_all(fresh, num_workers=2)) == affected
    assert set(fresh.skipped) == affected
    ids = [cid for b in DataLoader(fresh, batch_size=3, num_workers=2, collate_fn=collate_clips) if b for cid in b["clip_id"]]
    assert set(ids) == {r.clip_id for r in annotations.records} - affected
