"""Learning-rate schedules: the official Dassl configs' per-epoch rates, and the toolkit's own ramp.

The expected Dassl rates do not come from ``engine/schedule.py``: they come from driving torch's own
``CosineAnnealingLR`` (Dassl's successor scheduler) the way ``dassl/optim/lr_scheduler.py`` does
(warm-up wrapper with WARMUP_RECOUNT=True, one ``step()`` after every epoch), plus values worked out
by hand from its formula and the issue's MaPLe figures.
"""
from __future__ import annotations

import math

import pytest
import torch

from avfewshot.engine.build import resolve_run_config
from avfewshot.config import RunConfig
from avfewshot.engine.schedule import make_scheduler
from avfewshot.errors import UserError
from avfewshot.paths import runners_dir


def recipe_config(method: str) -> RunConfig:
    return resolve_run_config(runners_dir() / f"{method}.yaml", method=method, demo_layers=False)  # real-data layers


def toolkit_lrs(cfg: RunConfig):
    """The learning rate each epoch trains at, read from a real optimizer stepped once per epoch."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.train.lr)
    sched = make_scheduler(opt, cfg)
    out = []
    for _ in range(cfg.train.epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def dassl_reference_lrs(lr: float, max_epoch: int, warmup_epoch: int, cons_lr: float):
    """Dassl's cosine + constant warm-up: torch's CosineAnnealingLR(T_max=MAX_EPOCH) as the successor,
    built first; the wrapper counts its own epochs and hands over to the (recounted) successor after
    WARMUP_EPOCH wrapper steps, then forwards every step to it."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    successor = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(max_epoch))
    wrapper_epoch = 0

    def set_lr(value):
        for group in opt.param_groups:
            group["lr"] = value

    set_lr(cons_lr)  # the wrapper's own first step: epoch 0 of the warm-up
    out = []
    for _ in range(max_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if wrapper_epoch >= warmup_epoch:
            successor.step()
        else:
            wrapper_epoch += 1
            set_lr(cons_lr if wrapper_epoch < warmup_epoch else successor.get_last_lr()[0])
    return out


def test_maple_official_rates():
    cfg = recipe_config("maple")
    assert (cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.lr) == (5, 1, 0.0035)
    assert (cfg.train.warmup, cfg.train.warmup_lr) == ("constant", 1e-5)
    got = toolkit_lrs(cfg)
    # epochs 2-4 (0-based) as quoted in the issue from the official code: 3.17e-3 / 2.29e-3 / 1.21e-3
    assert [round(v, 5) for v in got[2:]] == [0.00317, 0.00229, 0.00121]
    assert got[0] == pytest.approx(1e-5, rel=1e-12) and got[1] == pytest.approx(0.0035, rel=1e-12)
    assert got == pytest.approx(dassl_reference_lrs(0.0035, 5, 1, 1e-5), rel=1e-9, abs=0)
    by_hand = [1e-5] + [0.0035 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(4)]
    assert got == pytest.approx(by_hand, rel=1e-12)


def test_coop_official_rates_over_200_epochs():
    cfg = recipe_config("coop")
    assert (cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.lr, cfg.train.warmup) == (200, 1, 0.002, "constant")
    got = toolkit_lrs(cfg)
    reference = dassl_reference_lrs(0.002, 200, 1, 1e-5)
    assert got == pytest.approx(reference, rel=1e-9, abs=1e-15)
    assert got[0] == pytest.approx(1e-5) and got[1] == pytest.approx(0.002)
    # the cosine runs over all 200 epochs with its count restarted: the last epoch is 0.001·(1 + cos(198π/200))
    assert got[-1] == pytest.approx(0.001 * (1 + math.cos(math.pi * 198 / 200)), rel=1e-12)
    assert got[-1] > 4e-7  # never 0, unlike the ramp schedule's last epoch


@pytest.mark.parametrize("recipe", ["coop", "cocoop", "maple", "clip_adapter"])
def test_recipes_claiming_official_configs_use_dassl_warmup(recipe):
    cfg = recipe_config(recipe)
    assert cfg.train.warmup == "constant" and cfg.train.warmup_lr == 1e-5 and cfg.train.warmup_epochs == 1


def test_ramp_schedule_is_unchanged_default():
    cfg = RunConfig()
    assert cfg.train.warmup == "ramp"
    cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.lr = 5, 1, 0.0035
    got = toolkit_lrs(cfg)
    expected = [0.0035 / 2] + [0.0035 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[2:] == pytest.approx([2.99e-3, 1.75e-3, 5.13e-4], rel=2e-3)  # the "toolkit" figures


def test_linear_warmup_and_dassl_multistep():
    cfg = RunConfig()
    t = cfg.train
    t.epochs, t.warmup_epochs, t.lr, t.warmup, t.warmup_lr = 7, 3, 0.3, "linear", 1e-4
    t.schedule, t.milestones, t.lr_gamma = "multistep", [2], 0.1
    got = toolkit_lrs(cfg)
    # Dassl LinearWarmupScheduler: min lr, lr·1/3, lr·2/3; then MultiStepLR recounted from 0
    expected = [1e-4, 0.1, 0.2, 0.3, 0.3, 0.03, 0.03]
    assert got == pytest.approx(expected, rel=1e-12)


def test_no_warmup_is_the_same_cosine_in_every_style():
    cfg = RunConfig()
    cfg.train.epochs = 6
    ramp = toolkit_lrs(cfg)
    cfg.train.warmup = "constant"
    assert toolkit_lrs(cfg) == ramp


def test_unknown_warmup_is_a_user_error():
    cfg = RunConfig()
    cfg.train.warmup = "cosine"
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(UserError, match="train.warmup"):
        make_scheduler(opt, cfg)
