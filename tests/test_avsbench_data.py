"""AVSBench S4 / MS3: layouts, validating reader, and the synthetic masks painted on the sounding object."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from avfewshot.data.avsbench import clip_paths, load_avs_clip, read_avs_meta, read_mask
from avfewshot.data.synth.avsbench import category_signature, make_avsbench
from avfewshot.errors import AnnotationError, MediaError


@pytest.fixture(scope="module")
def s4_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("s4")
    return root, make_avsbench(root, "s4", categories=3, clips_per_category=2, eval_clips_per_category=1, seed=1)


@pytest.fixture(scope="module")
def ms3_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms3")
    return root, make_avsbench(root, "ms3", categories=3, clips_per_category=2, eval_clips_per_category=1, seed=2)


def test_s4_layout_train_has_only_the_first_mask(s4_root):
    root, manifest = s4_root
    train = read_avs_meta(root, "s4", "train")
    assert len(train) == 6 and len(read_avs_meta(root, "s4")) == 12
    clip = train[0]
    folder = root / "s4_data" / "gt_masks" / "train" / clip.category / clip.name
    assert sorted(p.name for p in folder.iterdir()) == [f"{clip.name}_1.png"]
    paths = clip_paths(root, clip)
    assert [p.name for p in paths["frames"]] == [f"{clip.name}_{i}.png" for i in range(1, 6)]
    data = load_avs_clip(root, clip)
    assert data["frames"].shape == (5, 224, 224, 3) and data["masks"].shape == (1, 224, 224)
    assert data["mask_frames"] == (1,) and data["audio"].shape == (5, 32000)
    test_clip = read_avs_meta(root, "s4", "test")[0]
    assert load_avs_clip(root, test_clip)["masks"].shape == (5, 224, 224)


def test_ms3_layout_has_mp4_frame_names_and_five_masks(ms3_root):
    root, _ = ms3_root
    clip = read_avs_meta(root, "ms3", "train")[0]
    assert clip.category == ""
    frames = clip_paths(root, clip)["frames"]
    assert frames[0] == root / "ms3_data" / "visual_frames" / clip.name / f"{clip.name}.mp4_1.png"
    data = load_avs_clip(root, clip)
    assert data["masks"].shape == (5, 224, 224) and data["mask_frames"] == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("subset", ["s4", "ms3"])
def test_masks_are_painted_where_the_sounding_object_is(subset, s4_root, ms3_root):
    root, manifest = s4_root if subset == "s4" else ms3_root
    clips = {c["name"]: c for c in manifest["clips"]}
    for clip in read_avs_meta(root, subset):
        data, truth = load_avs_clip(root, clip), clips[clip.name]
        for mask, k in zip(data["masks"], data["mask_frames"]):
            frame = data["frames"][k - 1].astype(int)
            expected = np.zeros((224, 224), dtype=bool)
            for obj, on in zip(truth["objects"], truth["sounding"]):
                colour = np.array(category_signature(obj)[0])
                painted = (np.abs(frame - colour).max(-1) == 0)
                if on[k - 1]:
                    expected |= painted
            bar = frame.max(-1) == 0  # the moving black bar covers part of a box
            assert np.array_equal(mask.astype(bool) & ~bar, expected & ~bar)
            # the audio of that second holds the tone of each sounding object and only theirs
            spectrum = np.abs(np.fft.rfft(data["audio"][k - 1]))
            for obj, on in zip(truth["objects"], truth["sounding"]):
                bin_ = int(round(category_signature(obj)[1]))
                assert (spectrum[bin_] > 1000) == bool(on[k - 1])


def test_reader_refuses_bad_input_with_one_line_errors(tmp_path, s4_root):
    root, _ = s4_root
    meta = tmp_path / "s4_meta_data.csv"
    meta.write_text("name,start,category,split\nclipA,0,dog_barking,training\n")
    with pytest.raises(AnnotationError, match=r"s4_meta_data.csv, line 2: split 'training' is not one of"):
        read_avs_meta(tmp_path, "s4")
    meta.write_text("name,start,category,split\nclipA,0,dog_barking,train\nclipA,1,dog_barking,val\n")
    with pytest.raises(AnnotationError, match=r"line 3: clip 'clipA' repeats line 2"):
        read_avs_meta(tmp_path, "s4")
    (tmp_path / "ms3_meta_data.csv").write_text("name,vid\nx,y\n")
    with pytest.raises(AnnotationError, match="no `split` column"):
        read_avs_meta(tmp_path, "ms3")
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(rgb)
    with pytest.raises(MediaError, match="mask mode RGB"):
        read_mask(rgb)
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8), mode="L").save(grey)
    with pytest.raises(MediaError, match=r"mask values \[128\] are not 0 or 255"):
        read_mask(grey)
    clip = read_avs_meta(root, "s4", "val")[0]
    missing = clip_paths(root, clip)["frames"][2]
    moved = missing.with_suffix(".bak")
    missing.rename(moved)
    try:
        with pytest.raises(MediaError, match=f"{missing.name}: file not found"):
            load_avs_clip(root, clip)
    finally:
        moved.rename(missing)
