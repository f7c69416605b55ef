"""``bench dgsct --breakdown``: a step's operator time summed by kind, and each kind's ratio against fp32."""
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
