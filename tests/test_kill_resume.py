"""Nothing lost when training is killed: SIGKILL at random moments, then resume (short CI variant
of scripts/kill_resume.py, whose long run is recorded in docs/robustness.md)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from melody_utils.train import loop as T
from melody_utils.model import checkpoint as C

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kill_resume.py"
spec = importlib.util.spec_from_file_location("kill_resume", SCRIPT)
kr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kr)

torch.set_num_threads(1)
EPOCHS = 5  # 60 steps: room for 3 kills (each lets the run advance at most ~0.1 s past a checkpoint)
KILLS = 3
ATOL = 1e-6  # CPU, one thread, same seed: a resumed run repeats the same float operations


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    kr.train_once(out, EPOCHS)
    return out


def test_sigkill_at_random_moments_loses_nothing(reference, tmp_path):
    result = kr.kill_and_resume(tmp_path, KILLS, EPOCHS, seed=1, max_delay_s=0.1, log=lambda *_: None)
    assert result["kills"] == KILLS, result
    assert result["checkpoints_verified"] >= KILLS  # every kill left a loadable newest checkpoint
    cmp = kr.compare(tmp_path, reference)
    assert cmp["max_loss_curve_deviation"] <= ATOL
    assert cmp["max_weight_deviation"][C.CHECKPOINT_LAST] <= ATOL
    assert cmp["max_weight_deviation"][C.CHECKPOINT_BEST] <= ATOL
    assert result["temp_files_left"] == []  # a resumed run removes the temp files of killed writes


def test_a_kill_between_the_last_and_best_checkpoint_writes_keeps_the_best(reference, tmp_path, monkeypatch):
    ref_best = C.read_checkpoint(reference / C.CHECKPOINT_BEST)
    real_save = C.save_checkpoint

    def dies_before_the_final_best_write(path, *args, **kwargs):
        if Path(path).name == C.CHECKPOINT_BEST and kwargs["step"] == ref_best["step"]:
            raise KeyboardInterrupt  # as a kill between this epoch's two checkpoint writes would
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(T, "save_checkpoint", dies_before_the_final_best_write)
    with pytest.raises(KeyboardInterrupt):
        kr.train_once(tmp_path, EPOCHS, checkpoint_every_s=0)  # checkpoints at epoch ends only
    monkeypatch.setattr(T, "save_checkpoint", real_save)
    stale = tmp_path / f".{C.CHECKPOINT_LAST}.x1y2z3.tmp"  # what a kill inside a checkpoint write leaves
    stale.write_bytes(b"half a checkpoint")
    kr.train_once(tmp_path, EPOCHS, checkpoint_every_s=0)  # resume
    assert not stale.exists()
    cmp = kr.compare(tmp_path, reference)
    assert cmp["max_loss_curve_deviation"] <= ATOL
    best = C.read_checkpoint(tmp_path / C.CHECKPOINT_BEST)
    assert best["step"] == ref_best["step"]  # the best model is not lost
    assert cmp["max_weight_deviation"][C.CHECKPOINT_BEST] <= ATOL
