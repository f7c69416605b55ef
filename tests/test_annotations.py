"""Annotation readers against the real AVE / LLP files, plus malformed copies and small VGG-Sound files."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from avfewshot.data.annotations import (
    CLASS_NAMES_LLP,
    dataset_class_names,
    read_annotations,
    read_ave,
    read_llp,
    read_vggsound,
    read_vggsound40k,
)
from avfewshot.errors import AnnotationError, UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ave(shared_data):
    return read_ave(shared_data / "AVE")


@pytest.fixture(scope="module")
def llp(shared_data):
    return read_llp(shared_data / "LLP")


def copy_text_files(src: Path, dst: Path, names) -> Path:
    """Writable copies (the shared files are read-only, so copy the bytes, not the mode)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


AVE_FILES = ("Annotations.txt", "trainSet.txt", "valSet.txt", "testSet.txt", "categories.txt")
LLP_FILES = ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv")


def replace_line(path: Path, line_number: int, text: str) -> None:
    lines = path.read_text().split("\n")
    lines[line_number - 1] = text
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------------------- AVE


def test_ave_split_sizes_and_ids(ave):
    assert [len(ave.split(s)) for s in ("train", "val", "test")] == [3339, 402, 402]
    assert len(ave.records) == 4143
    assert len({r.media_id for r in ave.records}) == 4097
    assert len({r.clip_id for r in ave.records}) == 4143
    assert len(ave.class_names) == 28 and ave.background
    assert ave.class_names[0] == "Church bell" and ave.class_names[1] == "Male speech, man speaking"
    assert sorted(r.extra["annotation_row"] for r in ave.records) == list(range(4143))


def test_ave_duplicated_videos_keyed_by_row(ave):
    per_video = Counter(r.media_id for r in ave.records)
    repeated = {v for v, n in per_video.items() if n > 1}
    assert len(repeated) == 45
    for record in ave.records:
        if record.media_id in repeated:
            assert record.clip_id == f"{record.media_id}#{record.labels[0]}"
        else:
            assert record.clip_id == record.media_id
    triple = sorted(r.clip_id for r in ave.records if r.media_id == "0f_iTO5t3hU")
    banjo, mandolin, ukulele = (ave.class_names.index(n) for n in ("Banjo", "Mandolin", "Ukulele"))
    assert triple == sorted(f"0f_iTO5t3hU#{c}" for c in (banjo, mandolin, ukulele))
    # a pair that straddles train / test is reported, not hidden
    assert any("annotated in two splits" in p and "(train/test)" in p for p in ave.problems)


def test_ave_all_background_row(ave):
    (row,) = [r for r in ave.records if r.media_id == "VWi2ENBuTbw"]
    assert row.labels == (0,) and row.split == "train"
    assert row.segment_labels == (28,) * 10 and row.extra["no_foreground"]


def test_ave_segment_labels_match_official_h5(ave, shared_data):
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_data / "AVE" / "labels_closs.h5", "r") as f:
        closs = f["avadataset"][:]
    with h5py.File(shared_data / "AVE" / "mil_labels.h5", "r") as f:
        mil = f["avadataset"][:]
    assert closs.shape == (4143, 10) and mil.shape == (4143, 29)
    rebuilt_closs = np.zeros_like(closs)
    rebuilt_mil = np.zeros_like(mil)
    for r in ave.records:
        row = r.extra["annotation_row"]
        rebuilt_closs[row] = [s != len(ave.class_names) for s in r.segment_labels]
        rebuilt_mil[row, r.labels[0]] = 1
        assert set(r.segment_labels) <= {r.labels[0], 28}
    np.testing.assert_array_equal(rebuilt_closs, closs)
    np.testing.assert_array_equal(rebuilt_mil, mil)


def test_ave_train_walks_train_order(ave):
    church = [r.extra["annotation_row"] for r in ave.split("train") if r.labels == (0,)]
    assert church[:2] == [40, 30]  # train_order.h5 starts its Church bell rows with 40, 30


def test_ave_header_is_optional(tmp_path, shared_data, ave):
    root = copy_text_files(shared_data / "AVE", tmp_path / "AVE", AVE_FILES)
    text = (root / "Annotations.txt").read_text()
    assert text.startswith("Category&VideoID")
    (root / "Annotations.txt").write_text(text.split("\n", 1)[1])
    again = read_ave(root)
    assert [(r.clip_id, r.split, r.labels, r.segment_labels) for r in again.records] == [
        (r.clip_id, r.split, r.labels, r.segment_labels) for r in ave.records
    ]


@pytest.mark.parametrize(
    "name, line, text, message",
    [
        ("trainSet.txt", 3, "Church bell&EV1bVf8Bldk&good&0", "expected 5"),
        ("trainSet.txt", 3, "Church bell&EV1bVf8Bldk&good&0&ten", "end time 'ten' is not an integer"),
        ("trainSet.txt", 3, "Church bell&EV1bVf8Bldk&good&0&11", "outside 0..10"),
        ("trainSet.txt", 3, "Church bell&EV1bVf8Bldk&good&8&2", "after end time"),
        ("trainSet.txt", 3, "Church bells&EV1bVf8Bldk&good&0&10", "unknown category 'Church bells'"),
        ("valSet.txt", 2, "Church bell&AAAAAAAAAAA&good&0&10", "does not appear in Annotations.txt"),
        ("Annotations.txt", 5, "Bark,&x&good&0&10", "unknown category"),
    ],
)
def test_ave_malformed_rows_name_file_and_line(tmp_path, shared_data, name, line, text, message):
    root = copy_text_files(shared_data / "AVE", tmp_path / "AVE", AVE_FILES)
    replace_line(root / name, line, text)
    with pytest.raises(AnnotationError) as info:
        read_ave(root)
    assert f"{name}, line {line}:" in str(info.value)
    assert message in str(info.value)


def test_ave_missing_file_is_clear(tmp_path):
    with pytest.raises(AnnotationError, match="categories.txt: annotation file not found"):
        read_ave(tmp_path)


# --------------------------------------------------------------------------------------- LLP


def test_llp_split_sizes_and_ids(llp):
    assert [len(llp.split(s)) for s in ("train", "val", "test")] == [10000, 649, 1200]
    assert len({r.clip_id for r in llp.records}) == 11849
    assert llp.class_names == list(CLASS_NAMES_LLP) and len(CLASS_NAMES_LLP) == 25
    for r in llp.records:
        assert r.media_id == r.clip_id[:11] and len(r.media_id) == 11
    dashed = [r for r in llp.records if r.media_id.startswith("-")]
    assert len(dashed) == 151
    first = llp.records[0]
    assert (first.clip_id, first.labels) == ("BjCEufrlXm4_20_30", (0, 3))  # Speech,Dog
    assert Counter(len(r.labels) for r in llp.split("train")) == {1: 4032, 2: 5879, 3: 89}


def test_llp_duplicate_labels_collapse(llp):
    (clip,) = [r for r in llp.records if r.clip_id == "LcFWKgFphXI_20_30"]  # "Clapping,Clapping"
    assert clip.labels == (24,)


def test_llp_first_label_is_speech_for_625_test_clips(llp):
    assert sum(r.first_label == 0 for r in llp.split("test")) == 625


def test_llp_dense_events(llp):
    by_id = {r.clip_id: r for r in llp.records}
    clip = by_id["4YdbENYcIyE_23_33"]
    audio = np.array(clip.extra["audio_events"])
    visual = np.array(clip.extra["visual_events"])
    assert audio.shape == visual.shape == (10, 25)
    baby = CLASS_NAMES_LLP.index("Baby_cry_infant_cry")
    assert audio[:, baby].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]  # onset 0, offset 4
    assert visual[:, baby].tolist() == [1] * 10
    assert all("audio_events" in r.extra and "visual_events" in r.extra for r in llp.records if r.split != "train")
    assert not any("audio_events" in r.extra for r in llp.split("train"))
    # the reversed event (9 -> 0) yields no positive second
    cheering = CLASS_NAMES_LLP.index("Cheering")
    assert np.array(by_id["8DF2PxdT5tE_390_400"].extra["audio_events"])[:, cheering].sum() == 0
    # clips with no visual rows exist and are all zeros, not missing
    empty_visual = [r for r in llp.records if r.split != "train" and not np.any(r.extra["visual_events"])]
    assert len(empty_visual) > 100


def test_llp_eval_problems_are_reported(llp):
    text = "\n".join(llp.problems)
    assert "AVVP_eval_audio.csv: 14 rows name no clip" in text
    assert "P7x4FV4lg_570_580" in text
    assert "zero-length events" in text
    assert "reversed events" in text and "8DF2PxdT5tE_390_400 9-0" in text
    assert "AVVP_eval_visual.csv: 11 rows name no clip" in text


@pytest.mark.parametrize(
    "name, line, text, message",
    [
        ("AVVP_train.csv", 4, "abcdefghijk_0_10\tDogs", "unknown LLP label 'Dogs'"),
        ("AVVP_train.csv", 4, "abcdefghijk_0_10\tDog,", "has an empty label"),
        ("AVVP_val_pd.csv", 2, "abcdefghijk_0_10\tDog\tCat", "expected 2 tab-separated fields"),
        ("AVVP_test_pd.csv", 3, "abc\tDog", "is not '<11-character YouTube id>_<start>_<end>'"),
        ("AVVP_test_pd.csv", 3, "BjCEufrlXm4_20_30\tDog", "already listed in AVVP_train.csv, line 2"),
        ("AVVP_train.csv", 1, "file\tlabels", "expected the header"),
    ],
)
def test_llp_malformed_rows_name_file_and_line(tmp_path, shared_data, name, line, text, message):
    root = copy_text_files(shared_data / "LLP", tmp_path / "LLP", LLP_FILES)
    replace_line(root / name, line, text)
    with pytest.raises(AnnotationError) as info:
        read_llp(root)
    assert f"{name}, line {line}:" in str(info.value)
    assert message in str(info.value)


def test_llp_malformed_eval_row(tmp_path, shared_data):
    root = copy_text_files(shared_data / "LLP", tmp_path / "LLP", LLP_FILES + ("AVVP_eval_audio.csv",))
    replace_line(root / "AVVP_eval_audio.csv", 3, "KSRjje7GH44_60_70\t8\tx\tBlender")
    with pytest.raises(AnnotationError, match=r"AVVP_eval_audio.csv, line 3: offset 'x' is not an integer"):
        read_llp(root)


def dgsct_eval_audio(fixed: str) -> str:
    """The old eval_audio copy shipped with DG-SCT, rebuilt from the fixed file: it differs in three rows."""
    lines = fixed.split("\n")
    assert lines[929 - 1].startswith("JfZEqeLZqWk_30_40\t0\t10\tBaby_cry_infant_cry")
    assert lines[930 - 1] == "JfZEqeLZqWk_30_40\t0\t4\tSpeech" and lines[931 - 1] == "JfZEqeLZqWk_30_40\t7\t10\tSpeech"
    assert lines[2449 - 1] == "KvIjsmANkxI_10_20\t0\t1\tCat"
    lines[930 - 1] = "Baby_cry_infant_cry\t0\t4\tSpeech"
    lines[931 - 1] = "Baby_cry_infant_cry\t7\t10\tSpeech"
    lines[2449 - 1] = "KvIjsmANkxI_10_20`\t0\t1\tCat"
    return "\n".join(lines)


def test_llp_malformed_eval_rows_are_named_and_recovered(tmp_path, shared_data, llp):
    root = copy_text_files(shared_data / "LLP", tmp_path / "LLP", LLP_FILES + ("AVVP_eval_visual.csv",))
    (root / "AVVP_eval_audio.csv").write_text(dgsct_eval_audio((shared_data / "LLP" / "AVVP_eval_audio.csv").read_text()))
    old = read_llp(root)
    text = "\n".join(old.problems)
    malformed = [p for p in old.problems if "malformed rows" in p]
    assert len(malformed) == 1 and malformed[0].startswith("AVVP_eval_audio.csv: 3 malformed rows (recovered")
    assert "line 930: the class name 'Baby_cry_infant_cry' in the filename column; read as JfZEqeLZqWk_30_40" in text
    assert "line 931:" in text
    assert "line 2449: 'KvIjsmANkxI_10_20`' holds character(s) no clip name has ('`'); read as KvIjsmANkxI_10_20" in text
    # the malformed rows are not counted among the rows naming no clip (14, as in the fixed file)
    assert "AVVP_eval_audio.csv: 14 rows name no clip" in text
    fixed = {r.clip_id: r for r in llp.records}
    for record in old.records:
        assert record.extra == fixed[record.clip_id].extra, record.clip_id
    speech = np.array(fixed["JfZEqeLZqWk_30_40"].extra["audio_events"])[:, CLASS_NAMES_LLP.index("Speech")]
    assert speech.tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1, 1]


def test_llp_malformed_eval_rows_without_a_clear_clip_are_ignored(tmp_path, shared_data):
    root = copy_text_files(shared_data / "LLP", tmp_path / "LLP", LLP_FILES)
    rows = [
        "filename\tonset\toffset\tevent_labels",
        "JfZEqeLZqWk_30_40\t0\t10\tBaby_cry_infant_cry",
        "Dog\t0\t4\tSpeech",  # a class the clip before does not carry
        "Kv`IjsmANkxI_10_20\t0\t1\tCat",  # a stray character inside the name
        "KvIjsmANkxI_10_20\t0\t2\tcat",  # a class spelled another way
        "Baby cry, infant cry\t3\t5\tCat",  # a class name (other spelling) after a clip without that class
    ]
    (root / "AVVP_eval_audio.csv").write_text("\n".join(rows) + "\n")
    annotations = read_llp(root)
    text = "\n".join(annotations.problems)
    assert "AVVP_eval_audio.csv: 3 malformed rows (ignored: the intended clip is unclear)" in text
    assert "line 3: the class name 'Dog' in the filename column" in text
    assert "line 4: 'Kv`IjsmANkxI_10_20' holds character(s) no clip name has ('`')" in text
    assert "line 6: the class name 'Baby cry, infant cry' in the filename column" in text
    assert "1 malformed rows (recovered" in text and "line 5: the label 'cat' spells the class Cat" in text
    by_id = {r.clip_id: r for r in annotations.records}
    cat = np.array(by_id["KvIjsmANkxI_10_20"].extra["audio_events"])[:, CLASS_NAMES_LLP.index("Cat")]
    assert cat.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert not np.array(by_id["JfZEqeLZqWk_30_40"].extra["audio_events"])[:, 0].any()  # no Speech


def test_llp_without_eval_files(tmp_path, shared_data):
    root = copy_text_files(shared_data / "LLP", tmp_path / "LLP", LLP_FILES)
    annotations = read_llp(root)
    assert annotations.problems == [] and not any(r.extra for r in annotations.records)


# --------------------------------------------------------------------------------- VGG-Sound


VGGSOUND_CSV = (
    '---g-f_I2yQ,1,people marching,test\n'
    '--0PQM4-hqg,30,waterfall burbling,train\n'
    '-0aQ5dh0CJ8,250,"bird chirping, tweeting",train\n'
    '-1aQ5dh0CJ8,0,"bird chirping, tweeting",test\n'
)


def test_vggsound_quoted_comma_labels(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_text(VGGSOUND_CSV)
    annotations = read_vggsound(path)
    assert annotations.class_names == ["bird chirping, tweeting", "people marching", "waterfall burbling"]
    first, second, third, _ = annotations.records
    assert (first.clip_id, first.split, first.labels) == ("---g-f_I2yQ_000001", "test", (1,))
    assert (third.clip_id, third.labels, third.split) == ("-0aQ5dh0CJ8_000250", (0,), "train")
    assert second.media_id == "--0PQM4-hqg_000030"
    assert read_annotations("vggsound", tmp_path).class_names == annotations.class_names
    assert dataset_class_names("vggsound", path) == annotations.class_names


@pytest.mark.parametrize(
    "row, message",
    [
        ("abc,1,bird chirping, tweeting,train", "expected 4 comma-separated fields"),
        ("abc,one,dog barking,train", "start_seconds 'one' is not an integer"),
        ("abc,1,dog barking,val", "split 'val' is not one of train, test"),
    ],
)
def test_vggsound_malformed_rows(tmp_path, row, message):
    path = tmp_path / "vggsound.csv"
    path.write_text(VGGSOUND_CSV + row + "\n")
    with pytest.raises(AnnotationError) as info:
        read_vggsound(path)
    assert "vggsound.csv, line 5:" in str(info.value) and message in str(info.value)


def write_40k(root: Path, rows) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "VggsoundAVEL40kCategories.txt").write_text("dog barking\nbird chirping, tweeting\ncat purring\n")
    header = ",clip_name,category,video_id,label,split\n"
    (root / "vggsound-avel40k_labels.csv").write_text(header + "".join(r + "\n" for r in rows))
    return root


GOOD_40K = [
    '0,abc_000010,dog barking,0,"[0, 0, 1, 1, 1, 1, 0, 0, 0, 0]",train',
    '1,def_000020,"bird chirping, tweeting",000001,"[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",val',
    '2,ghi_000030,cat purring,123,"[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",test',
]


def test_vggsound40k_format(tmp_path):
    annotations = read_vggsound40k(write_40k(tmp_path / "v", GOOD_40K))
    assert annotations.class_names == ["dog barking", "bird chirping, tweeting", "cat purring"]
    assert annotations.background
    a, b, c = annotations.records
    assert (a.clip_id, a.media_id, a.split, a.labels) == ("000000", "000000", "train", (0,))
    assert a.segment_labels == (3, 3, 0, 0, 0, 0, 3, 3, 3, 3)
    assert (b.clip_id, b.labels, b.segment_labels) == ("000001", (1,), (1,) * 10)
    assert (c.clip_id, c.segment_labels) == ("000123", (3,) * 10)
    assert a.extra["clip_name"] == "abc_000010"
    assert read_annotations("vggsound40k", tmp_path / "v").records == annotations.records


@pytest.mark.parametrize(
    "row, message",
    [
        ('3,x,dog barking,7,"[0, 0, 1]",train', "has 3 values, expected 10"),
        ('3,x,dog barking,7,"[0, 0, 2, 0, 0, 0, 0, 0, 0, 0]",train', "value '2' is not 0 or 1"),
        ('3,x,dog barking,7,"__import__(\'os\')",train', "is not a list"),
        ('3,x,dog barking,7,[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],train', "expected 6 comma-separated fields"),
        ('3,x,dog barked,7,"[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",train', "unknown category 'dog barked'"),
        ('3,x,dog barking,7x,"[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",train', "video_id '7x' is not a number"),
        ('3,x,dog barking,1,"[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",train', "video_id 000001 repeats line 3"),
    ],
)
def test_vggsound40k_malformed_rows(tmp_path, row, message):
    root = write_40k(tmp_path / "v", GOOD_40K + [row])
    with pytest.raises(AnnotationError) as info:
        read_vggsound40k(root)
    assert "vggsound-avel40k_labels.csv, line 5:" in str(info.value) and message in str(info.value)


# ---------------------------------------------------------------------------------- dispatch


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(UserError, match="valid datasets: ave, llp, vggsound, vggsound40k"):
        read_annotations("avqa", tmp_path)


def test_readers_cover_the_dataset_table():
    from avfewshot.data import facts
    from avfewshot.data.annotations import DATASETS, READERS

    assert tuple(READERS) == DATASETS == facts.DATASETS == ("ave", "llp", "vggsound", "vggsound40k")


def test_dataset_class_names_without_a_root(shared_data):
    assert dataset_class_names("ave") == dataset_class_names("AVE", shared_data / "AVE")
    assert len(dataset_class_names("ave")) == 28
    for dataset in ("vggsound", "vggsound40k"):
        with pytest.raises(UserError, match="give --root"):
            dataset_class_names(dataset)
    with pytest.raises(UserError, match="valid datasets"):
        dataset_class_names("avqa")


def test_class_name_files_match_official_order(shared_data):
    ave_names = (REPO / "prompts" / "classnames" / "ave.txt").read_text().splitlines()
    llp_names = (REPO / "prompts" / "classnames" / "llp.txt").read_text().splitlines()
    assert ave_names == dataset_class_names("ave", shared_data / "AVE")
    assert llp_names == dataset_class_names("llp") == list(CLASS_NAMES_LLP)
