"""What the supervised runner tests share: one torch thread, a run through the API, a run that dies in an epoch."""
from __future__ import annotations

import pytest
import torch

import avfewshot
from avfewshot.engine import supervised_runner as runner


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_supervised(tmp_path, task, *overrides, **kw):
    return avfewshot.run_supervised(task=task, results_dir=str(tmp_path), progress=False,
                                    overrides=["train.threads=1", "train.device=cpu", *overrides], **kw)


def die_in_epoch(monkeypatch, epoch: int):
    """Make the runner raise KeyboardInterrupt when it seeds epoch ``epoch``; returns the real seeding function."""
    real = runner.seed_everything
    calls = {"n": 0}

    def dies(seed):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        real(seed)

    monkeypatch.setattr(runner, "seed_everything", dies)
    return real
