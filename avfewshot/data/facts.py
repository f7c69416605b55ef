"""Dataset facts, written once: names, annotation files, splits, class lists and id rules.

Readers, synthesis, checks and the CLI import these; nothing else spells them out. Standard library
only, so the CLI can build its choices without importing numpy. Formats and quirks:
``docs/datasets.md`` §1-§3 and §7.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..errors import UserError  # a standard-library-only module

CLIP_SECONDS = 10  # every clip of every dataset is ten one-second segments
SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------------------------
# AVE
# ---------------------------------------------------------------------------------------------

AVE_ANNOTATIONS = "Annotations.txt"
AVE_CATEGORIES = "categories.txt"
AVE_SPLIT_FILES: Dict[str, str] = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
AVE_HEADER_LINE = "Category&VideoID&Quality&StartTime&EndTime"  # only the dataset-zip copy has it

# categories.txt line order = the official class index
AVE_CLASS_NAMES: Tuple[str, ...] = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute",
    "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock",
    "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat", "Horse", "Toilet flush",
    "Rodents, rats, mice", "Accordion", "Mandolin",
)

# ---------------------------------------------------------------------------------------------
# LLP (AVVP)
# ---------------------------------------------------------------------------------------------

LLP_SPLIT_FILES: Dict[str, str] = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
LLP_FULL_FILE = "AVVP_dataset_full.csv"  # train + val + test in one file (not read)
LLP_EVAL_FILES: Dict[str, str] = {"audio_events": "AVVP_eval_audio.csv", "visual_events": "AVVP_eval_visual.csv"}
LLP_WEAK_HEADER = ("filename", "event_labels")
LLP_DENSE_HEADER = ("filename", "onset", "offset", "event_labels")
LLP_ID_LENGTH = 11  # the YouTube id is filename[:11]; ids contain "_" and "-", never split on "_"
YOUTUBE_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# fixed by the dataset (hard-coded in both official codebases); the index order
LLP_CLASS_NAMES: Tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm",
    "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner",
    "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar",
    "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)

# ---------------------------------------------------------------------------------------------
# VGG-Sound and the DG-SCT 40K subset
# ---------------------------------------------------------------------------------------------

VGGSOUND_CSV = "vggsound.csv"  # no header: youtube_id,start_seconds,label,split
VGGSOUND_SPLITS = ("train", "test")
VGG40K_LABELS = "vggsound-avel40k_labels.csv"
VGG40K_CATEGORIES = "VggsoundAVEL40kCategories.txt"
VGG40K_REQUIRED_COLUMNS = ("category", "video_id", "label", "split")
VGG40K_ID_DIGITS = 6  # video_id is zero-padded to six digits (pandas drops the zeros)

# ---------------------------------------------------------------------------------------------
# DG-SCT prepared media layout
# ---------------------------------------------------------------------------------------------

DGSCT_AUDIO_RATE = 32000  # wave/<id>.npy holds CLIP_SECONDS x 32,000 float samples
MEDIA_LAYOUTS = ("raw", "dgsct")  # raw: video/<id>.mp4 (+ audio/<id>.wav); dgsct: jpg frames + npy waves
SYNTH_LAYOUTS = MEDIA_LAYOUTS + ("both",)  # what the synthesiser can write


# ---------------------------------------------------------------------------------------------
# the dataset table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset root holds and how its labels are given.

    level: "segment" when the annotations give a label per second (AVE, VGG-Sound 40K), "clip"
    when they give one label set per clip (LLP's weak labels; its dense eval files add per-second
    labels for val / test; VGG-Sound).
    """

    name: str
    title: str
    level: str
    splits: Tuple[str, ...]
    annotation_files: Tuple[str, ...]  # files every root must hold
    split_files: Tuple[Tuple[str, str], ...] = ()  # (split, file) when each split has its own file
    optional_files: Tuple[str, ...] = ()  # read when present
    background: bool = False  # a background class follows the events (index = number of classes)
    frame_folder: str = "frames"  # DG-SCT layout: <frame_folder>/<id>/%08d.jpg
    fixed_classes: Tuple[str, ...] = ()  # the official class list, when it is known without a root
    class_list_file: Optional[str] = None  # the root's one-class-per-line file (index order)

    @property
    def has_val(self) -> bool:
        return "val" in self.splits


DATASET_TABLE: Dict[str, DatasetInfo] = {
    "ave": DatasetInfo(
        "ave", "AVE", "segment", SPLITS,
        annotation_files=(AVE_CATEGORIES, AVE_ANNOTATIONS) + tuple(AVE_SPLIT_FILES.values()),
        split_files=tuple(AVE_SPLIT_FILES.items()), background=True, fixed_classes=AVE_CLASS_NAMES,
        class_list_file=AVE_CATEGORIES,
    ),
    "llp": DatasetInfo(
        "llp", "LLP", "clip", SPLITS,
        annotation_files=tuple(LLP_SPLIT_FILES.values()), split_files=tuple(LLP_SPLIT_FILES.items()),
        optional_files=tuple(LLP_EVAL_FILES.values()), frame_folder="frame", fixed_classes=LLP_CLASS_NAMES,
    ),
    "vggsound": DatasetInfo("vggsound", "VGG-Sound", "clip", VGGSOUND_SPLITS, annotation_files=(VGGSOUND_CSV,)),
    "vggsound40k": DatasetInfo(
        "vggsound40k", "VGG-Sound 40K", "segment", SPLITS,
        annotation_files=(VGG40K_CATEGORIES, VGG40K_LABELS), background=True, class_list_file=VGG40K_CATEGORIES,
    ),
}
DATASETS: Tuple[str, ...] = tuple(DATASET_TABLE)
DGSCT_FRAME_DIRS: Tuple[str, ...] = tuple(dict.fromkeys(d.frame_folder for d in DATASET_TABLE.values()))


def dataset_info(name: str) -> DatasetInfo:
    """The table row of ``name`` (case-insensitive); a UserError lists the valid names."""
    key = str(name).lower()
    if key not in DATASET_TABLE:
        raise UserError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASET_TABLE[key]


# ---------------------------------------------------------------------------------------------
# AVSBench-object (S4, MS3) and MUSIC-AVQA: the supervised runners' datasets (docs/datasets.md §4).
# Not in DATASET_TABLE: their roots, clips and labels differ from the few-shot datasets'.
# ---------------------------------------------------------------------------------------------

AVS_SUBSETS = ("s4", "ms3")
AVS_FRAMES = 5  # five frames and five 1-s audio segments per clip
AVS_MASK_SIZE = 224  # ground-truth PNGs are 224 x 224, 0 / 255
AVS_META_FILES: Dict[str, str] = {"s4": "s4_meta_data.csv", "ms3": "ms3_meta_data.csv"}
AVS_DATA_FOLDERS: Dict[str, str] = {"s4": "s4_data", "ms3": "ms3_data"}
AVS_WAVE_FILE = "AVS.npy"  # DG-SCT: one pickled {"<name>.wav": 160,000 samples at 32 kHz} per folder
AVS_S4_CATEGORIES: Tuple[str, ...] = (
    "baby_laughter", "female_singing", "male_speech", "dog_barking", "cat_meowing", "lions_roaring",
    "horse_clip-clop", "coyote_howling", "mynah_bird_singing", "playing_acoustic_guitar", "playing_tabla",
    "playing_violin", "playing_piano", "playing_ukulele", "playing_glockenspiel", "helicopter", "race_car",
    "driving_buses", "ambulance_siren", "typing_on_computer_keyboard", "chainsawing_trees", "cap_gun_shooting",
    "lawn_mowing",
)

AVQA_SPLIT_FILES: Dict[str, str] = {"train": "avqa-train.json", "val": "avqa-val.json", "test": "avqa-test.json"}
AVQA_QUESTION_VOCAB = "ques_vocab.txt"  # first entry <pad>
AVQA_ANSWER_VOCAB = "ans_vocab.txt"  # line order = answer class index (train-json first appearance)
AVQA_JSON_KEYS = ("video_id", "question_id", "type", "question_content", "templ_values", "anser")
AVQA_MAX_TOKENS = 14  # questions are padded with <pad> to 14 tokens
AVQA_SEGMENTS = 10  # frames by linspace over the ~60-s video; audio (10, 32000)
AVQA_TYPES: Tuple[Tuple[str, str], ...] = (
    ("Audio", "Counting"), ("Audio", "Comparative"), ("Visual", "Counting"), ("Visual", "Location"),
    ("Audio-Visual", "Existential"), ("Audio-Visual", "Counting"), ("Audio-Visual", "Location"),
    ("Audio-Visual", "Comparative"), ("Audio-Visual", "Temporal"),
)
