"""A guard for collapsed class-prompt text features.

When every class prompt maps to (nearly) the same text feature, every image- or audio-text logit is
equal across classes: the branch cannot classify, and nothing fails loudly. A tokenizer that does not
match the text tower (laion-clap's offline fallback maps every text to ``<s></s>``), a checkpoint that
does not match the architecture, a random tower, or a template that hides the class name all do this.
Methods check their class prompts once when built; the report goes into ``metrics.json``.
"""
from __future__ import annotations

import logging
import math
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

log = logging.getLogger("avfewshot")

MAX_COSINE = 0.999  # above this, two class prompts are the same vector for a classifier
MIN_RANK_FRACTION = 0.1  # effective rank below this fraction of the class count (and below 2): collapsed
TOWER_OF = {"visual": "CLIP", "audio": "CLAP"}


def effective_rank(features: torch.Tensor) -> float:
    """exp(entropy) of the normalised singular values (Roy & Vetterli 2007): 1 for a rank-one matrix."""
    values = torch.linalg.svdvals(features.double())
    p = values / values.sum().clamp(min=1e-30)
    p = p[p > 0]
    return float(math.exp(-(p * p.log()).sum()))


def text_feature_report(features: torch.Tensor, class_names: Sequence[str], branch: str) -> Dict:
    """Pairwise cosines and effective rank of (K, D) class text features, and whether they collapsed."""
    k = features.shape[0]
    report: Dict = {"branch": branch, "tower": TOWER_OF.get(branch, branch), "classes": k}
    if k < 2 or features.is_meta:  # a meta build (shapes only) has no values to check
        return {**report, "max_cosine": None, "closest": None, "effective_rank": None, "collapsed": False}
    f = F.normalize(features.detach().float(), dim=-1)
    sim = f @ f.t()
    sim.fill_diagonal_(-2.0)
    flat = int(sim.argmax())
    i, j = divmod(flat, k)
    max_cos = float(sim[i, j])
    rank = effective_rank(f)
    collapsed = max_cos > MAX_COSINE or (k >= 4 and rank < max(1.5, MIN_RANK_FRACTION * k))
    return {**report, "max_cosine": round(max_cos, 7), "closest": [class_names[i], class_names[j]],
            "effective_rank": round(rank, 3), "collapsed": bool(collapsed)}


def warning_text(report: Dict) -> str:
    a, b = report["closest"]
    return (f"{report['tower']} text features of the {report['classes']} class prompts ({report['branch']} branch) are "
            f"nearly identical: max pairwise cosine {report['max_cosine']:.6f} between {a!r} and {b!r}, effective rank "
            f"{report['effective_rank']:.2f}; the {report['branch']} branch cannot tell the classes apart. Likely causes: "
            f"a tokenizer that does not match the text tower (model.clap_tokenizer), a checkpoint that does not match "
            f"the architecture or random weights (model.*_weights), or a prompt template that hides the class name")


def check_and_warn(features: torch.Tensor, class_names: Sequence[str], branch: str) -> Dict:
    report = text_feature_report(features, class_names, branch)
    if report["collapsed"]:
        log.warning(warning_text(report))
    return report
