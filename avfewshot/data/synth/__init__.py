"""Synthetic AVE / LLP / VGG-Sound / VGG-Sound-40K roots: official annotation formats, real media.

``make_dataset`` writes a dataset root whose annotation files follow the official formats with
their quirks (``docs/datasets.md`` §1-§3 and §7) and whose media carry the
labels, so loaders, the Dataset, metrics and whole runs can be tested end to end:

* Every class maps to a **concept** with a colour and a tone (:mod:`.concepts`).
* A second with a visual event is filled with the colour, otherwise mid grey (a moving black bar
  makes frames differ); a second with an audio event holds the tone, otherwise faint noise
  (:mod:`.writers`).
* AVE: an event is audio-visual on start <= t < end, background elsewhere. LLP: audio and visual
  events have their own spans. VGG-Sound: the labelled event fills the clip. VGG-Sound 40K: the
  event covers the seconds of its 0/1 list (one planner module per dataset).
* Media: ``raw`` layout = ``video/<id>.mp4`` (H.264 64x48 at 8 fps + AAC mono 16 kHz; every
  ``stereo_every``-th video has 44.1 kHz stereo audio instead) and, for LLP as in the official
  release, optionally ``audio/<id>.wav`` (16 kHz PCM). ``dgsct`` layout = ``frames/<id>/%08d.jpg``
  (LLP: ``frame/``; 20 jpgs, two per second) and ``wave/<id>.npy`` (320,000 float32 at 32 kHz).
* Deterministic for a seed: the annotation files and manifest are byte-identical; mp4s decode
  to identical tensors (x264 runs single-threaded).

The manifest (``<root>/manifest.json``) lists each clip's split, labels and the true per-second
audio and visual class (index in the reader's class order, -1 = nothing); :func:`oracle_labels`
reads those labels back from decoded tensors. :func:`ensure_demo` builds the embedded demo roots.
"""
from ..facts import AVE_CLASS_NAMES, LLP_CLASS_NAMES
from .concepts import (
    CONCEPTS, GREY, OTHER_VGG_NAMES, Concept, Signature, class_signature, concept_index, concept_name, palette,
    synthetic_class_names, tone_hz, vggsound40k_class_names,
)
from .demo import DEMO_SEED, DEMO_SIZES, ensure_demo
from .make import GENERATOR_VERSION, LAYOUTS, PLANNERS, load_manifest, make_dataset
from .oracle import oracle_labels
from .plans import ClipPlan
from .writers import (
    AUDIO_RATE, DGSCT_FRAMES_PER_SECOND, DGSCT_RATE, FPS, HEIGHT, STEREO_RATE, WIDTH, expected_mean_colour,
    render_audio, render_frame, write_dgsct_media, write_mp4, write_wav,
)

__all__ = (
    "AVE_CLASS_NAMES", "LLP_CLASS_NAMES", "CONCEPTS", "GREY", "OTHER_VGG_NAMES", "Concept", "Signature",
    "class_signature", "concept_index", "concept_name", "palette", "synthetic_class_names", "tone_hz",
    "vggsound40k_class_names", "DEMO_SEED", "DEMO_SIZES", "ensure_demo", "GENERATOR_VERSION", "LAYOUTS",
    "PLANNERS", "load_manifest", "make_dataset", "oracle_labels", "ClipPlan", "AUDIO_RATE",
    "DGSCT_FRAMES_PER_SECOND", "DGSCT_RATE", "FPS", "HEIGHT", "STEREO_RATE", "WIDTH", "expected_mean_colour",
    "render_audio", "render_frame", "write_dgsct_media", "write_mp4", "write_wav",
)
