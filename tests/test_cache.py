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


# -- entry format 4: channel-first frames, CRC-32 of the payload --------------------------------
class _OneFile:
    """Stands in for MediaFiles: one real file whose identity keys the entry."""

    layout = "raw"

    def __init__(self, path):
        self.path = path

    def paths(self):
        return [self.path]


def _tiny_clip():
    import numpy as np

    from avfewshot.data.media import DecodedClip

    rng = np.random.default_rng(3)
    return DecodedClip(rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8),
                       rng.standard_normal((2, 1000)).astype(np.float32), (4, 9))


TINY = MediaSpec(num_segments=2, image_size=5, audio_rate=1000)


def test_entries_hold_channel_first_frames_and_read_back_as_views(tmp_path):
    import numpy as np

    media = tmp_path / "clip.mp4"
    media.write_bytes(b"media")
    clip = _tiny_clip()
    cache = DecodedCache(tmp_path / "cache")
    key = cache.key(_OneFile(media), TINY)
    raw = cache.put(key, clip).read_bytes()
    payload = np.ascontiguousarray(clip.frames.transpose(0, 3, 1, 2)).tobytes()
    assert payload in raw and clip.frames.tobytes() not in raw  # stored (T, 3, H, W)
    got = cache.get(key, TINY)
    assert got.frames.shape == (2, 5, 5, 3) and np.array_equal(got.frames, clip.frames)
    assert not got.frames.flags.owndata and np.moveaxis(got.frames, -1, -3).flags.c_contiguous  # a view, no copy
    assert np.array_equal(got.audio, clip.audio) and got.frame_indices == (4, 9)
    from avfewshot.data.media import normalise_frames

    assert torch.equal(normalise_frames(got.frames, "clip"), normalise_frames(clip.frames, "clip"))


def test_every_changed_payload_byte_is_caught(tmp_path):
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"media")
    cache = DecodedCache(tmp_path / "cache")
    key = cache.key(_OneFile(media), TINY)
    path = cache.put(key, _tiny_clip())
    good = path.read_bytes()
    payload_start = len(good) - (2 * 3 * 5 * 5 + 2 + 2 * 1000 * 4)  # frames, 2 padding bytes, audio
    for position in list(range(payload_start, payload_start + 160)) + list(range(len(good) - 160, len(good))):
        for flip in (0x01, 0x80):
            damaged = bytearray(good)
            damaged[position] ^= flip
            path.write_bytes(bytes(damaged))
            assert cache.get(key, TINY) is None and not path.exists(), position
    assert cache.recovered == 2 * 320


def test_entries_are_read_back_whichever_crc32_implementation_wrote_them(tmp_path, monkeypatch):
    import zlib

    import numpy as np

    from avfewshot.data import checksum

    data = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8)
    assert checksum.crc32(data) == zlib.crc32(data)
    assert checksum.crc32(data[1000:], checksum.crc32(data[:1000])) == zlib.crc32(data)
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"media")
    cache = DecodedCache(tmp_path / "cache")
    key = cache.key(_OneFile(media), TINY)
    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "crc32", zlib.crc32)  # the standard library's, as without zlib-ng
        cache.put(key, _tiny_clip())
    assert cache.get(key, TINY) is not None and cache.recovered == 0


def test_entries_of_the_previous_format_are_a_clean_miss_never_misread(tmp_path, monkeypatch, caplog):
    import json

    import numpy as np

    media = tmp_path / "clip.mp4"
    media.write_bytes(b"media")
    clip = _tiny_clip()
    cache = DecodedCache(tmp_path / "cache")
    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "CACHE_FORMAT_VERSION", "3")
        old_key = cache.key(_OneFile(media), TINY)
    key = cache.key(_OneFile(media), TINY)
    assert old_key != key  # the format is part of the key: old entries are never looked up

    def format3_entry(entry_key):  # as the previous release wrote it: (T, H, W, 3) frames
        import zlib

        crc = zlib.crc32(clip.audio.tobytes(), zlib.crc32(b"\0\0", zlib.crc32(clip.frames.tobytes())))
        header = json.dumps({"key": entry_key, "frames": [2, 5, 5, 3], "audio": [2, 1000], "frame_indices": [4, 9],
                             "crc32": crc})
        return (b"AVFCLIP2" + len(header).to_bytes(4, "little") + header.encode() + clip.frames.tobytes() + b"\0\0"
                + clip.audio.tobytes())

    for entry_key in (old_key, key):
        cache.path(entry_key).parent.mkdir(parents=True, exist_ok=True)
        cache.path(entry_key).write_bytes(format3_entry(entry_key))
    decodes = []

    def decode(files, spec):
        decodes.append(1)
        return clip

    # even an old-format file under the new key's name is rejected, not misread as channel-first
    with caplog.at_level(logging.WARNING, logger="avfewshot"):
        got, got_key = cache.fetch(_OneFile(media), TINY, decode)
    assert got_key == key and decodes == [1] and cache.recovered == 1 and "not a decoded-clip entry" in caplog.text
    assert np.array_equal(got.frames, clip.frames)
    again, _ = cache.fetch(_OneFile(media), TINY, decode)
    assert decodes == [1] and np.array_equal(again.frames, clip.frames)


def test_bench_data_repeats_cold_passes_and_reports_medians(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from avfewshot.bench import data as bench_data

    monkeypatch.setitem(synth.DEMO_SIZES, "llp", {"classes": 2, "clips_per_class": 1, "eval_clips_per_class": 1})
    out = tmp_path / "bench.json"
    assert bench_data.main(SimpleNamespace(repeats=2, work_dir=str(tmp_path / "work"), out=str(out))) == 0
    import json

    result = json.loads(out.read_text())
    n = result["clips"]
    assert result["cold_decodes"] == 2 * n and result["warm_misses"] == 0 and result["warm_hits"] == 4 * n
    assert len(result["cold_seconds_each"]) == 2 and len(result["warm_seconds_each"]) == 4
    assert len(result["ratio_each_cold_pass"]) == 2 and result["ratio_warm_over_cold"] > 0
    assert result["crc32"] in ("zlib-ng", "zlib")
    printed = capsys.readouterr().out
    assert "median of 2 passes" in printed and "median of 4 passes" in printed and "load average" in printed
