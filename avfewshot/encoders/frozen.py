"""Base class for frozen towers: always in eval mode, never trainable."""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

RANDOM_INIT_SEED = 0  # random-init towers are reproducible, so their features can be cached


class FrozenTower(nn.Module):
    """``train()`` is a no-op: BatchNorm statistics, SpecAugment, drop-path and dropout never run.

    Unless ``follows_train_mode`` is set (``model.frozen_towers=released``, the released DG-SCT code's
    behaviour): then ``train(True)`` puts the tower's modules in training mode; parameters stay frozen.

    ``weight_dtype``: the dtype of the matmul weights (``store_weights_in``); with bf16 / fp16 the
    tower's public methods compute under autocast in that dtype (``low_precision_compute``). Their
    token streams come out in ``stream_dtype``; pooled features and embeddings always in fp32.
    """

    follows_train_mode: bool = False
    weight_dtype: torch.dtype = torch.float32

    def fp32_modules(self) -> Iterable[nn.Module]:
        """Sub-modules kept in fp32 whatever the storage dtype (e.g. the audio front end)."""
        return ()

    def extra_matmul_weights(self) -> Iterable[nn.Parameter]:
        """Bare parameters used as matmul operands (e.g. open_clip's projections)."""
        return ()

    @property
    def stream_dtype(self) -> torch.dtype:
        """The dtype of the residual token streams between the tower's pieces: bf16 when the weights are
        stored in bf16 (the tower then runs as a bf16 model: no cast of the stream before each
        LayerNorm and unit, and none of its gradient back; fp32's exponent range, so no overflow),
        else fp32 (fp16 streams could overflow, and fp32 weights mean an fp32 run).
        Measured at real size (ViT-B/32 + HTS-AT-tiny, random weights, dgsct-official, 2 x 10 segments):
        fused logits 1.81e-2 relative off fp32 with bf16 streams, 1.62e-2 with fp32 streams; the
        bf16 training step 12 % faster (17.9 -> 15.8 s, one thread, profiled; docs/design.md)."""
        return torch.bfloat16 if self.weight_dtype == torch.bfloat16 else torch.float32

    def device_type(self) -> str:
        for p in self.parameters():
            return p.device.type
        return "cpu"

    def freeze(self) -> "FrozenTower":
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "FrozenTower":
        return super().train(bool(mode) and self.follows_train_mode)


@contextlib.contextmanager
def seeded_init(seed: int = RANDOM_INIT_SEED) -> Iterator[None]:
    """Build modules with a fixed seed without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def skip_weight_init() -> Iterator[None]:
    """Skip random initialisation while building modules whose every tensor is loaded right after.

    Only used before a strict load (every parameter and persistent buffer is overwritten); saves
    several seconds for the full-size towers. Constructor-computed buffers (masks, STFT kernels)
    are untouched.
    """
    import sys

    with contextlib.ExitStack() as stack:
        try:
            from transformers.initialization import no_init_weights  # transformers >= 5
        except ImportError:  # pragma: no cover - older transformers
            try:
                from transformers.modeling_utils import no_init_weights
            except ImportError:
                no_init_weights = None
        if no_init_weights is not None:
            stack.enter_context(no_init_weights())
        htsat = sys.modules.get("clap_module.htsat")
        if htsat is not None and hasattr(htsat, "trunc_normal_"):
            original = htsat.trunc_normal_
            htsat.trunc_normal_ = lambda tensor, *args, **kwargs: tensor
            stack.callback(setattr, htsat, "trunc_normal_", original)
        yield


# -- low-precision storage ----------------------------------------------------------------------
#: modules whose weights feed a matrix product (or a lookup): stored in ``model.frozen_dtype``.
#: LayerNorm / BatchNorm (statistics and affine), biases added to fp32 streams (positional embeddings,
#: relative-position tables) and every module the tower names in ``fp32_modules()`` stay fp32.
MATMUL_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.MultiheadAttention)


def store_weights_in(tower: "FrozenTower", dtype: torch.dtype) -> int:
    """Cast the matmul weights of ``tower`` to ``dtype`` in place; returns how many tensors were cast."""
    keep = {id(m) for root in tower.fp32_modules() for m in root.modules()}
    cast = 0
    for module in tower.modules():
        if id(module) in keep or not isinstance(module, MATMUL_MODULES):
            continue
        for name, param in module.named_parameters(recurse=False):
            if param.dtype != dtype and param.is_floating_point():
                param.data = param.data.to(dtype)
                cast += 1
    for param in tower.extra_matmul_weights():
        if param.dtype != dtype:
            param.data = param.data.to(dtype)
            cast += 1
    tower.weight_dtype = dtype
    return cast


def low_precision_compute(fn: Callable) -> Callable:
    """Run a tower method under autocast in the tower's weight dtype when its weights are stored in
    bf16 / fp16 and autocast is not already on with that dtype (a direct call outside the trainer)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        dtype = self.weight_dtype
        if dtype == torch.float32:
            return fn(self, *args, **kwargs)
        device_type = self.device_type()
        if device_type not in ("cpu", "cuda") or (torch.is_autocast_enabled(device_type)
                                                  and torch.get_autocast_dtype(device_type) == dtype):
            return fn(self, *args, **kwargs)
        with torch.autocast(device_type=device_type, dtype=dtype):
            return fn(self, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules whose parameters live on the ``meta`` device (shapes only): each parameter is moved
    there as it is registered (one parameter at a time exists on the CPU, uninitialised), so
    initialisation runs on meta for free. Buffers stay on the CPU (masks, indices: small; move the
    result with ``.to("meta")``). torchlibrosa's STFT / log-mel modules, whose constructors assign CPU
    tensors to ``weight.data``, are built on the CPU (a few MB)."""
    import sys

    original_register = nn.Module.register_parameter
    exempt = [0]

    def register(module, name, param):
        if param is not None and not exempt[0] and not param.is_meta:
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        original_register(module, name, param)

    htsat = sys.modules.get("clap_module.htsat")
    originals = {name: getattr(htsat, name) for name in ("Spectrogram", "LogmelFilterBank")
                 if htsat is not None and hasattr(htsat, name)}

    def on_cpu(cls):
        def build(*args, **kwargs):
            exempt[0] += 1
            try:
                return cls(*args, **kwargs)
            finally:
                exempt[0] -= 1
        return build

    nn.Module.register_parameter = register
    for name, cls in originals.items():
        setattr(htsat, name, on_cpu(cls))
    try:
        yield
    finally:
        nn.Module.register_parameter = original_register
        for name, cls in originals.items():
            setattr(htsat, name, cls)
