"""Where a step's time goes, by kind of operator: matrix products against everything else.

A precision's gain is bounded by its slowest part (Amdahl): bf16 halves a step only if the work
outside the matrix units speeds up as well. ``profile_kinds(step)`` runs one step under
``torch.profiler`` and sums each operator's self time (CPU time on the CPU; device time on CUDA)
into the kinds below, so ``bench dgsct --breakdown`` can print, per precision, how much of the
step each kind takes and, against fp32, how much each kind gained.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Tuple

#: kind -> ATen operator names (without the ``aten::`` prefix). Anything else that ATen runs is
#: "elementwise & reductions"; non-ATen entries (autograd nodes, custom functions) are "other".
KINDS: Dict[str, Tuple[str, ...]] = {
    "matmul & conv": ("mm", "addmm", "bmm", "baddbmm", "addbmm", "addmv", "mv", "dot", "mkldnn_convolution",
                      "convolution_backward", "_convolution", "mkldnn_linear"),
    "fused attention": ("_scaled_dot_product_flash_attention_for_cpu",
                        "_scaled_dot_product_flash_attention_for_cpu_backward",
                        "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_backward",
                        "_scaled_dot_product_efficient_attention",
                        "_scaled_dot_product_efficient_attention_backward",
                        "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_cudnn_attention_backward",
                        "_efficient_attention_forward", "_efficient_attention_backward",
                        "_flash_attention_forward", "_flash_attention_backward"),
    "normalisation": ("native_layer_norm", "native_layer_norm_backward", "native_batch_norm",
                      "native_batch_norm_backward", "_native_batch_norm_legit", "_batch_norm_with_update",
                      "batch_norm_backward", "cudnn_batch_norm", "cudnn_batch_norm_backward"),
    "copies & casts": ("copy_", "_to_copy", "clone", "cat", "stack", "index_select", "index", "gather",
                       "_unsafe_index", "index_add_", "index_put_", "_index_put_impl_", "fill_", "zero_"),
    "optimizer": ("_fused_adam_", "_fused_adamw_", "_foreach_norm", "_foreach_mul_", "_foreach_add_",
                  "_foreach_addcmul_", "_foreach_addcdiv_", "_foreach_sqrt", "_foreach_div_", "_foreach_lerp_"),
}
ELEMENTWISE = "elementwise & reductions"
OTHER = "other"
ORDER = tuple(KINDS) + (ELEMENTWISE, OTHER)
_KIND_OF = {f"aten::{name}": kind for kind, names in KINDS.items() for name in names}


def kind_of(name: str) -> str:
    """The kind of a profiler event name."""
    if name in _KIND_OF:
        return _KIND_OF[name]
    return ELEMENTWISE if name.startswith("aten::") else OTHER


def sum_by_kind(events: Iterable[Tuple[str, float]]) -> Dict[str, float]:
    """(name, self seconds) pairs -> seconds per kind, every kind present (0.0 when absent)."""
    out = {kind: 0.0 for kind in ORDER}
    for name, seconds in events:
        out[kind_of(name)] += seconds
    return out


def profile_kinds(step: Callable[[], object], device_type: str = "cpu") -> Dict[str, float]:
    """Run ``step()`` once under ``torch.profiler`` and return its self time per kind, in seconds."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device_type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if device_type == "cuda":
            torch.cuda.synchronize()
    device_time = device_type == "cuda"
    events = []
    for e in prof.key_averages():
        if e.device_type != torch.autograd.DeviceType.CPU:
            continue  # a kernel's own entry: its time is already the self device time of the op that launched it
        micros = e.self_device_time_total if device_time else e.self_cpu_time_total
        events.append((e.key, micros / 1e6))
    return sum_by_kind(events)


def kind_ratios(low: Dict[str, float], base: Dict[str, float]) -> Dict[str, float]:
    """Per kind, ``low`` seconds over ``base`` seconds (kinds with no time in ``base`` left out)."""
    return {kind: low.get(kind, 0.0) / base[kind] for kind in ORDER if base.get(kind, 0.0) > 0}


def report_kinds(kinds: Dict[str, float]) -> str:
    total = sum(kinds.values()) or 1.0
    parts = [f"{kind} {seconds:.2f} s ({100 * seconds / total:.0f} %)" for kind, seconds in kinds.items() if seconds > 0]
    return f"  time by kind           one profiled step, operators' self time {total:.2f} s: " + ", ".join(parts)


def report_kind_ratios(ratios: Dict[str, float]) -> str:
    return "  by kind against fp32   " + ", ".join(f"{kind} x{r:.2f}" for kind, r in ratios.items())
