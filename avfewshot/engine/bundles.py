"""Self-describing pretraining bundles: the transferable trained state of a method, ready for new classes.

A bundle is one ``torch.save`` file (written atomically) whose content loads with
``torch.load(weights_only=True)``: only dicts, lists, strings, numbers and tensors. It holds

- ``format`` / ``format_version``: what this file is;
- ``method`` and ``architecture``: the method name, its class, its resolved options and the shape of
  every tensor it transfers, plus the frozen towers' fingerprints when the backbone provides them;
- ``state``: the transferable tensors; ``dropped``: the trainable tensors that were left out;
- ``config``: the resolved run config of the pretraining run; ``class_names``: its label space;
- ``versions``: avfewshot, torch, open_clip, python; ``extra``: free metadata (e.g. its metrics).

What transfers. A method may say it itself with ``transferable_state()``. Otherwise the rule is:
every tensor of ``trainable_state()`` whose shape does not depend on the number of classes.
That dependence is measured, not guessed: the method is built once more on the same backbone with
one extra class name, and a tensor whose shape differs between the two builds is class-dependent
(per-class heads, class-specific contexts, cached per-class text features). Those are left at the
target's own initialisation, which is built from the target class names. Learned prompt contexts
shared by all classes, adapters and projections do transfer - unlike the released DG-SCT zero-shot
code, which rebuilds its prompt learner with a random context. A segment-level target task (AVE)
keeps its background class: it is part of the target label space and gets its prompt like any
other class, and the pretraining task (VGG-Sound 40K, 141 events + background) trained it too.
"""
from __future__ import annotations

import dataclasses
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

from . import results as res
from ..errors import MissingCheckpointError, UserError

log = logging.getLogger("avfewshot")
PathLike = Union[str, Path]
BUNDLE_FORMAT = "avfewshot-pretraining-bundle"
BUNDLE_VERSION = 1
FINGERPRINT_TOWERS = ("image", "audio", "clip_text", "clap_text")


# -- what transfers ---------------------------------------------------------------------------
def _names_with_one_more(method) -> List[str]:
    names = list(method.class_names)
    extra = "extra class for the transfer probe"
    if getattr(method.task, "background", False) and names:
        return names[:-1] + [extra, names[-1]]  # background stays last
    return names + [extra]


def class_dependent_keys(method) -> Set[str]:
    """Keys of ``trainable_state()`` whose shape changes with the number of classes.

    Measured by building the same method class once more with one extra class name (the torch
    RNG is restored afterwards). If the method cannot be rebuilt that way, falls back to a shape
    rule: a tensor with a dimension equal to the number of classes (with or without background).
    """
    import torch

    own = method.trainable_state()
    try:
        with torch.random.fork_rng(devices=[]):
            twin = type(method)(method.backbone, method.task, _names_with_one_more(method), method.cfg)
        other = twin.trainable_state()
    except Exception as exc:  # noqa: BLE001 - any rebuild failure means: use the shape rule
        log.info("bundle: cannot rebuild %s to probe class dependence (%s); using the shape rule", type(method).__name__, exc)
        sizes = {len(method.class_names), len(method.class_names) - int(bool(getattr(method.task, "background", False)))}
        return {k for k, v in own.items() if any(d in sizes for d in v.shape)}
    return {k for k, v in own.items() if k not in other or tuple(other[k].shape) != tuple(v.shape)}


def transferable_state(method) -> Tuple[Dict[str, Any], List[str]]:
    """(tensors that transfer, names of the trainable tensors that do not)."""
    full = method.trainable_state()
    if callable(getattr(method, "transferable_state", None)):
        state = dict(method.transferable_state())
    else:
        dependent = class_dependent_keys(method)
        state = {k: v for k, v in full.items() if k not in dependent}
    unknown = sorted(set(state) - set(full))
    if unknown:
        raise UserError(f"method {method.name!r}: transferable_state() names tensors that are not part of its "
                        f"trainable state: {unknown[:5]}")
    return {k: v.detach().cpu().clone() for k, v in state.items()}, sorted(set(full) - set(state))


# -- metadata ---------------------------------------------------------------------------------
def _versions() -> Dict[str, str]:
    from importlib import metadata

    import torch

    from .. import __version__

    out = {"avfewshot": __version__, "torch": torch.__version__, "python": platform.python_version()}
    for dist in ("open_clip_torch", "laion_clap"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _fingerprints(method) -> Dict[str, str]:
    fingerprint = getattr(getattr(method, "backbone", None), "fingerprint", None)
    if not callable(fingerprint):
        return {}
    out = {}
    for tower in FINGERPRINT_TOWERS:
        try:
            out[tower] = str(fingerprint(tower))
        except Exception:  # noqa: BLE001 - a tower the backbone does not fingerprint
            continue
    return out


def _plain(value: Any) -> Any:
    """Only what ``torch.load(weights_only=True)`` reads back: dicts, lists, str, numbers, None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    for plain in (int, float, str):  # also turns subclasses (torch's TorchVersion is a str) into plain types
        if isinstance(value, plain):
            return plain(value)
    return str(value)


def _method_options(method) -> Dict[str, Any]:
    cfg = getattr(method, "cfg", None)
    return _plain(cfg) if cfg is not None else {}


# -- save / read / load -----------------------------------------------------------------------
def save_bundle(path: PathLike, method, cfg, class_names: List[str], extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``method``'s transferable state with its config and class list to ``path`` (atomically)."""
    state, dropped = transferable_state(method)
    if not state:
        raise UserError(f"method {method.name!r} has nothing that transfers to new classes "
                        f"(its trainable tensors all depend on the class count: {dropped[:5]}); a bundle would be empty")
    bundle = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "method": method.name,
        "architecture": {
            "class": f"{type(method).__module__}.{type(method).__qualname__}",
            "method_options": _method_options(method),
            "shapes": {k: list(v.shape) for k, v in state.items()},
            "backbone": _fingerprints(method),
        },
        "state": state,
        "dropped": dropped,
        "config": _plain(cfg),
        "class_names": [str(c) for c in class_names],
        "versions": _plain(_versions()),
        "extra": _plain(extra or {}),
    }
    path = Path(path)
    res.save_torch(path, bundle)
    return path


def read_bundle(path: PathLike) -> Dict[str, Any]:
    """Load and check a bundle file (format and version); raises a clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"pretraining bundle {path} does not exist; create one with "
                                     "`avfewshot pretrain --dataset vggsound40k --out BUNDLE` or check the --init path")
    try:
        bundle = res.load_torch(path)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for foreign or truncated files
        raise UserError(f"{path} is not a readable avfewshot bundle ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                        "a run's trainable.pt or checkpoint is not a bundle: make one with `avfewshot pretrain`") from None
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise UserError(f"{path} is not an avfewshot pretraining bundle (no {BUNDLE_FORMAT!r} format tag); "
                        "make one with `avfewshot pretrain`")
    version = bundle.get("format_version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise UserError(f"{path}: bundle format version {version!r} is newer than this avfewshot reads "
                        f"({BUNDLE_VERSION}); upgrade avfewshot")
    for key in ("method", "state", "architecture", "class_names", "config"):
        if key not in bundle:
            raise UserError(f"{path}: the bundle has no {key!r} entry; it is damaged, recreate it with `avfewshot pretrain`")
    return bundle


@dataclass
class BundleLoad:
    """What ``load_bundle_into`` did."""

    path: Path
    loaded: List[str]
    left_at_init: List[str]
    source_classes: int
    warnings: List[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"[avfewshot] loaded {len(self.loaded)} transferable tensor(s) from {self.path} "
                f"(pretrained on {self.source_classes} classes)")
        if self.left_at_init:
            shown = ", ".join(self.left_at_init[:6]) + (" ..." if len(self.left_at_init) > 6 else "")
            text += f"; left at initialisation for the target classes: {shown}"
        return text


def _option_differences(bundle: Dict[str, Any], method) -> List[str]:
    saved = bundle["architecture"].get("method_options", {})
    now = _method_options(method)
    return [f"{k}: bundle {saved.get(k)!r} vs run {now.get(k)!r}" for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


def load_bundle_into(method, path: PathLike, say: Callable[[str], None] = print) -> BundleLoad:
    """Load a bundle's transferable tensors into ``method`` (built for the target class names).

    Strict about what the bundle claims: every tensor it holds must exist in the method's trainable
    state with the same shape, else nothing is loaded and the error lists the mismatches. Trainable
    tensors the bundle does not hold stay at their initialisation and are reported.
    """
    import torch

    path = Path(path)
    bundle = read_bundle(path)
    if bundle["method"] != method.name:
        raise UserError(f"{path} was pretrained with method {bundle['method']!r}, but this run builds {method.name!r}; "
                        f"run with --method {bundle['method']} or pretrain a bundle for {method.name!r}")
    target = method.trainable_state()
    state: Dict[str, torch.Tensor] = bundle["state"]
    problems = []
    for key, tensor in state.items():
        if key not in target:
            problems.append(f"{key}: not in this method's trainable state")
        elif tuple(target[key].shape) != tuple(tensor.shape):
            problems.append(f"{key}: shape {list(tensor.shape)} in the bundle, {list(target[key].shape)} here")
    if problems:
        differences = _option_differences(bundle, method)
        hint = ("; method options that differ: " + "; ".join(differences)) if differences else ""
        raise UserError(f"{path} does not fit this {method.name!r} architecture: " + "; ".join(problems[:8])
                        + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else "") + hint
                        + ". Use the same model / method options as the pretraining run (see the bundle's config).")
    warnings = []
    saved_towers = bundle["architecture"].get("backbone", {})
    for tower, now in _fingerprints(method).items():
        if tower in saved_towers and saved_towers[tower] != now:
            warnings.append(f"the frozen {tower} tower's fingerprint differs from the pretraining run's "
                            f"(bundle: {saved_towers[tower]}; here: {now}); unless it is the same weights file "
                            "copied elsewhere, the transferred parts were trained against other features")
    differences = _option_differences(bundle, method)
    if differences:
        warnings.append("method options differ from the pretraining run: " + "; ".join(differences))
    missing, unexpected = method.load_state_dict(state, strict=False)
    assert not unexpected, unexpected  # checked above
    report = BundleLoad(path=path, loaded=sorted(state), left_at_init=sorted(set(target) - set(state)),
                        source_classes=len(bundle["class_names"]), warnings=warnings)
    log.info("%s", report.summary())
    say(report.summary())
    for warning in warnings:
        log.info("bundle %s: warning: %s", path, warning)
        say(f"[avfewshot] warning: {warning}")
    return report
