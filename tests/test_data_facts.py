"""Dataset facts live in one light module; the rest of the package imports them instead of restating them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from avfewshot.data import annotations, facts, synth
from avfewshot.data.media import DGSCT_FRAME_DIRS, LAYOUTS
from avfewshot.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "avfewshot"


def test_facts_import_nothing_heavy():
    code = (
        "import sys, avfewshot.data.facts, avfewshot.commands.data, avfewshot.commands.splits; "
        "print(sorted(m for m in ('numpy', 'torch', 'av', 'decord', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_class_list_per_dataset(shared_data):
    assert synth.AVE_CLASS_NAMES is facts.AVE_CLASS_NAMES and synth.LLP_CLASS_NAMES is facts.LLP_CLASS_NAMES
    assert annotations.CLASS_NAMES_LLP is facts.LLP_CLASS_NAMES
    real = (shared_data / "AVE" / "categories.txt").read_text().splitlines()
    assert list(facts.AVE_CLASS_NAMES) == real and len(facts.LLP_CLASS_NAMES) == 25
    # the concept table names only classes of the official lists
    assert {c.ave for c in synth.CONCEPTS if c.ave} <= set(facts.AVE_CLASS_NAMES)
    assert {c.llp for c in synth.CONCEPTS if c.llp} <= set(facts.LLP_CLASS_NAMES)


def test_annotation_file_names_are_written_once():
    names = {facts.AVE_ANNOTATIONS, facts.AVE_CATEGORIES, facts.LLP_FULL_FILE, facts.VGGSOUND_CSV,
             facts.VGG40K_LABELS, facts.VGG40K_CATEGORIES}
    names |= set(facts.AVE_SPLIT_FILES.values()) | set(facts.LLP_SPLIT_FILES.values()) | set(facts.LLP_EVAL_FILES.values())
    restated = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "facts.py":
            continue
        text = path.read_text(encoding="utf-8")
        found = sorted(n for n in names if f'"{n}"' in text or f"'{n}'" in text)
        if found:
            restated[str(path.relative_to(REPO))] = found
    assert restated == {}


def test_dataset_table():
    assert facts.DATASETS == ("ave", "llp", "vggsound", "vggsound40k")
    assert [facts.DATASET_TABLE[d].has_val for d in facts.DATASETS] == [True, True, False, True]
    assert [facts.DATASET_TABLE[d].level for d in facts.DATASETS] == ["segment", "clip", "clip", "segment"]
    assert [d for d in facts.DATASETS if facts.DATASET_TABLE[d].background] == ["ave", "vggsound40k"]
    assert facts.dataset_info("LLP").frame_folder == "frame" and DGSCT_FRAME_DIRS == ("frames", "frame")
    assert LAYOUTS == facts.MEDIA_LAYOUTS and synth.LAYOUTS == facts.SYNTH_LAYOUTS
    with pytest.raises(UserError, match="valid datasets: ave, llp, vggsound, vggsound40k"):
        facts.dataset_info("avqa")


def test_synthetic_and_official_class_names_differ_by_name():
    assert synth.synthetic_class_names("ave") == annotations.dataset_class_names("ave")
    assert synth.synthetic_class_names("vggsound40k") == synth.vggsound40k_class_names()
    assert len(synth.synthetic_class_names("vggsound")) == 141
    assert not hasattr(synth, "dataset_class_names")
    with pytest.raises(UserError, match="valid datasets"):
        synth.synthetic_class_names("avqa")


def test_no_data_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in (PACKAGE / "data").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
