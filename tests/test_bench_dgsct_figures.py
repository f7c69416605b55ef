"""``bench dgsct`` figures: `--breakdown` (operator time by kind, each kind against fp32) and `--rounds` (ABBA order, pooled)."""
import pytest
import torch
import torch.nn.functional as F

from avfewshot.bench.op_kinds import ELEMENTWISE, ORDER, OTHER, kind_of, kind_ratios, report_kinds, sum_by_kind, \
    profile_kinds


def test_kind_of_names_matmul_normalisation_copies_and_the_rest():
    assert kind_of("aten::addmm") == "matmul & conv"
    assert kind_of("aten::bmm") == "matmul & conv"
    assert kind_of("aten::native_layer_norm_backward") == "normalisation"
    assert kind_of("aten::copy_") == "copies & casts"
    assert kind_of("aten::_fused_adam_") == "optimizer"
    assert kind_of("aten::gelu_backward") == ELEMENTWISE
    assert kind_of("autograd::engine::evaluate_function: AddmmBackward0") == OTHER
    assert kind_of("ModulatedBottleneckBackward") == OTHER


def test_sum_by_kind_adds_seconds_and_lists_every_kind():
    kinds = sum_by_kind([("aten::mm", 1.0), ("aten::addmm", 0.5), ("aten::mul", 0.25), ("PyFunction", 0.125)])
    assert list(kinds) == list(ORDER)
    assert kinds["matmul & conv"] == 1.5
    assert kinds[ELEMENTWISE] == 0.25
    assert kinds[OTHER] == 0.125
    assert kinds["normalisation"] == 0.0


def test_kind_ratios_skip_kinds_without_base_time():
    base = {"matmul & conv": 4.0, "normalisation": 1.0, ELEMENTWISE: 0.0}
    low = {"matmul & conv": 1.0, "normalisation": 1.0, ELEMENTWISE: 0.5}
    assert kind_ratios(low, base) == {"matmul & conv": 0.25, "normalisation": 1.0}


def test_profile_kinds_sees_the_matmul_and_normalisation_of_a_real_step():
    torch.manual_seed(0)
    weight = torch.randn(64, 32, requires_grad=True)
    x = torch.randn(128, 32)

    def step():
        loss = F.gelu(F.layer_norm(x @ weight.t(), (64,))).square().mean()
        loss.backward()

    kinds = profile_kinds(step)
    assert list(kinds) == list(ORDER)
    assert kinds["matmul & conv"] > 0
    assert kinds["normalisation"] > 0
    assert kinds[ELEMENTWISE] > 0
    text = report_kinds(kinds)
    assert "matmul & conv" in text and "%" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_profile_kinds_on_cuda_uses_device_time():  # pragma: no cover - GPU only
    weight = torch.randn(64, 32, device="cuda", requires_grad=True)
    x = torch.randn(128, 32, device="cuda")
    kinds = profile_kinds(lambda: (x @ weight.t()).sum().backward(), "cuda")
    assert kinds["matmul & conv"] > 0


# ``bench dgsct --rounds``: alternating order and pooled figures (no model built: a stand-in measure)
def _fig(step, each, peak_rss=5.0, kinds=None):
    fig = {"step_seconds": step, "step_seconds_each": each, "eval_seconds": step / 2, "peak_rss_gb": peak_rss,
           "peak_memory_gb": peak_rss, "matmul_peak_gflops": 500.0, "warmup_step_seconds": step,
           "step_tflop": 1.0, "gflops": 0.0, "fraction_of_peak": 0.0, "trainable_parameters": 1,
           "model": "m", "batch": "b", "threads": 2, "precision": "x"}
    if kinds is not None:
        fig["time_by_kind"] = kinds
    return fig


def test_rounds_alternate_the_precisions_and_pool_their_figures(tmp_path, monkeypatch):
    from avfewshot.bench import dgsct

    monkeypatch.setattr(dgsct, "report", lambda fig: "")
    order = []
    steps = {"fp32": iter([10.0, 14.0]), "bf16": iter([6.0, 6.5])}

    def measure(precision):
        order.append(precision)
        step = next(steps[precision])
        return _fig(step, [step - 0.5, step, step + 0.5], peak_rss=7.0 if precision == "fp32" else 5.0 + len(order),
                    kinds={"matmul & conv": step / 2, "other": 1.0})

    runs = dgsct.measure_rounds("tcmalloc", ["fp32", "bf16"], 2, measure)
    assert order == ["fp32", "bf16", "bf16", "fp32"]  # ABBA: drift falls on both alike
    pooled = {p: dgsct.pool_rounds(figs) for p, figs in runs.items()}
    assert pooled["fp32"]["step_seconds_by_round"] == [10.0, 14.0]
    assert pooled["fp32"]["step_seconds"] == 12.0  # the median of all six steps
    assert pooled["bf16"]["peak_rss_gb"] == 8.0  # the largest of the rounds (6.0 and 8.0)
    assert pooled["bf16"]["time_by_kind"]["matmul & conv"] == 3.125
    figures = {"tcmalloc/fp32": pooled["fp32"], "tcmalloc/bf16": pooled["bf16"]}
    c = dgsct.compare_to_fp32(figures, "tcmalloc", "bf16", tmp_path)
    assert c["step_ratio_by_round"] == [0.6, round(6.5 / 14.0, 3)]
    assert c["step_ratio"] == round(pooled["bf16"]["step_seconds"] / 12.0, 3)
    assert "; by round x0.60, x0.46" in dgsct.report_comparison(c)


def test_one_round_keeps_the_single_measurement():
    from avfewshot.bench import dgsct

    fig = _fig(3.0, [3.0])
    assert dgsct.pool_rounds([fig]) is fig


def test_rounds_below_one_is_a_one_line_error(capsys):
    from avfewshot.cli import main

    assert main(["bench", "dgsct", "--rounds", "0", "--variants", "plain"]) == 2
    err = capsys.readouterr().err
    assert "--rounds 0" in err and "1 or more" in err
