"""Tests of melody_utils.train.loop: training, its checkpoints and resume, time budgets, early stopping,
on a synthetic token cache and tiny models (CPU). The ``cache`` fixture is in conftest.py."""

import json
import math

import numpy as np
import pytest
import torch

from melody_utils.data import windows as data
from melody_utils.train import schedule as S, loop as T
from melody_utils.model import checkpoint as C, lstm as MD
from melody_utils.music.quantize import Bins
from melody_utils.music.tokens import Vocab

from helpers import make_cache, tiny_cfg

torch.set_num_threads(1)

LOSS_KEYS = ("train_loss", "val_loss", "val_pitch", "val_step", "val_duration", "lr", "epoch", "step")


def losses(history):
    return {k: history[k] for k in LOSS_KEYS}


class FakeClock:
    """Seconds that advance by ``tick`` at every reading (a time budget without waiting); the
    ``kill_at``-th reading raises, like a run killed mid-way."""

    def __init__(self, tick: float, kill_at: int = 0):
        self.now, self.tick, self.readings, self.kill_at = 1000.0, tick, 0, kill_at

    def __call__(self) -> float:
        self.readings += 1
        if self.readings == self.kill_at:
            raise KeyboardInterrupt
        self.now += self.tick
        return self.now


def test_a_time_budget_anneals_to_the_floor_and_counts_across_resumes(cache, tmp_path):
    cfg = tiny_cfg(**{"train.epochs": 1000, "train.time_budget_s": 30.0, "train.warmup_steps": 2})
    with pytest.raises(KeyboardInterrupt):  # killed half-way through the budget
        T.train(cfg, cache, tmp_path, progress=False, clock=FakeClock(0.5, kill_at=30))
    first = json.loads((tmp_path / T.HISTORY_FILE).read_text())
    assert len(first["lr"]) >= 1 and first["lr"][-1] > 2e-3 * S.MIN_LR_FRACTION  # killed before the floor
    h = T.train(cfg, cache, tmp_path, progress=False, clock=FakeClock(0.5))  # resumed: the first seconds count
    assert h["step"][-1] < 1000 * 4  # stopped by the budget, not the epochs
    assert h["lr"][-1] == pytest.approx(2e-3 * S.MIN_LR_FRACTION, rel=0.05)  # the last step ran at the floor
    assert all(a > b for a, b in zip(h["lr"][1:], h["lr"][2:]))  # the schedule did not restart on resume
    again = T.train(cfg, cache, tmp_path, progress=False, clock=FakeClock(0.5))
    assert again["step"] == h["step"]  # the budget is spent: nothing more to train


def test_warmup_never_takes_the_whole_run(cache, tmp_path):
    h = T.train(tiny_cfg(**{"train.warmup_steps": 1000, "train.epochs": 3}), cache, tmp_path, progress=False)
    assert h["lr"][0] > h["lr"][-1]  # a short run still decays, even with a long configured warm-up
    assert h["lr"][-1] < 0.5 * 2e-3


def test_train_writes_history_and_checkpoints(cache, tmp_path):
    seen = []
    h = T.train(tiny_cfg(**{"train.epochs": 3}), cache, tmp_path, progress=False, on_epoch=lambda h: seen.append(len(h["epoch"])))
    assert seen == [1, 2, 3]
    assert h["epoch"] == [1.0, 2.0, 3.0]
    n_batches = math.ceil(len(data.MusicDataset(cache, "train", 16, 16)) / 8)
    assert h["step"] == [n_batches, 2 * n_batches, 3 * n_batches]
    assert all(isinstance(x, float) and math.isfinite(x) for k in LOSS_KEYS[:5] for x in h[k])
    for i in range(3):  # the total is the sum of the heads
        assert h["val_loss"][i] == pytest.approx(h["val_pitch"][i] + h["val_step"][i] + h["val_duration"][i], rel=1e-5)
    assert h["train_loss"][-1] < h["train_loss"][0]  # the motif is learnable: the loss falls
    assert json.loads((tmp_path / T.HISTORY_FILE).read_text()) == h
    assert (tmp_path / C.CHECKPOINT_LAST).is_file() and (tmp_path / C.CHECKPOINT_BEST).is_file()
    best = C.read_checkpoint(tmp_path / C.CHECKPOINT_BEST)
    assert best["best_val_loss"] == pytest.approx(min(h["val_loss"]))
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files


def test_same_seed_same_curve(cache, tmp_path):
    a = T.train(tiny_cfg(), cache, tmp_path / "a", progress=False)
    b = T.train(tiny_cfg(), cache, tmp_path / "b", progress=False)
    assert losses(a) == losses(b)


def test_resume_after_epoch_reproduces_the_loss_curve(cache, tmp_path):
    cfg = tiny_cfg(**{"train.epochs": 3})
    straight = T.train(cfg, cache, tmp_path / "straight", progress=False)

    class Crash(Exception):
        pass

    def crash_after_first(history):
        raise Crash  # as if the runtime died right after epoch 1's checkpoint

    with pytest.raises(Crash):  # checkpoints at every epoch's end
        T.train(cfg, cache, tmp_path / "resumed", progress=False, on_epoch=crash_after_first, checkpoint_every_s=0)
    assert C.read_checkpoint(tmp_path / "resumed" / C.CHECKPOINT_LAST)["epoch"] == 1
    resumed = T.train(cfg, cache, tmp_path / "resumed", progress=False)
    assert len(resumed["epoch"]) == 3
    for k in LOSS_KEYS:
        np.testing.assert_allclose(resumed[k], straight[k], rtol=0, atol=1e-6, err_msg=k)


def test_resume_mid_epoch_reproduces_the_loss_curve(cache, tmp_path, monkeypatch):
    cfg = tiny_cfg()
    straight = T.train(cfg, cache, tmp_path / "straight", progress=False)
    n_batches = straight["step"][0]
    crash_at = n_batches + n_batches // 2  # a step in the middle of epoch 2
    real_build = MD.build_model

    def build_crashing(*args):
        model = real_build(*args)
        real_loss, calls = model.loss, [0]

        def loss(batch):
            if model.training:
                calls[0] += 1
                if calls[0] > crash_at:
                    raise KeyboardInterrupt
            return real_loss(batch)

        model.loss = loss
        return model

    monkeypatch.setattr(MD, "build_model", build_crashing)
    with pytest.raises(KeyboardInterrupt):  # checkpoint after every step, die mid-epoch
        T.train(cfg, cache, tmp_path / "resumed", progress=False, checkpoint_every_s=1e-9)
    ckpt = C.read_checkpoint(tmp_path / "resumed" / C.CHECKPOINT_LAST)
    assert (ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]) == (1, crash_at - n_batches, crash_at)
    monkeypatch.setattr(MD, "build_model", real_build)
    resumed = T.train(cfg, cache, tmp_path / "resumed", progress=False)
    for k in LOSS_KEYS:
        np.testing.assert_allclose(resumed[k], straight[k], rtol=0, atol=1e-6, err_msg=k)


def test_max_steps_stops_mid_epoch_and_resume_respects_limits(cache, tmp_path, capsys):
    cfg = tiny_cfg(**{"train.max_steps": 3})
    h = T.train(cfg, cache, tmp_path, progress=False)
    n_batches = math.ceil(len(data.MusicDataset(cache, "train", 16, 16)) / 8)
    assert n_batches > 3
    assert h["step"] == [3] and h["epoch"] == [pytest.approx(3 / n_batches)]
    again = T.train(cfg, cache, tmp_path, progress=True)  # limit already reached: nothing to do
    assert again == h and "nothing to train" in capsys.readouterr().out
    more = T.train(tiny_cfg(**{"train.max_steps": 0}), cache, tmp_path, progress=False)  # raise the limit
    assert more["epoch"][0] == h["epoch"][0] and more["epoch"][1:] == [1.0, 2.0]
    assert more["step"][-1] == 2 * n_batches


def test_window_models_train_on_seed_windows_at_stride_1(cache, tmp_path):
    cfg = tiny_cfg(**{"model.arch": "baseline", "train.epochs": 1})
    h = T.train(cfg, cache, tmp_path, progress=False)
    windows = len(data.window_starts(cache.offsets, cache.piece_indices("train"), 8, 1))
    assert h["step"] == [math.ceil(windows / 8)]
    model, _, _, _ = C.load_checkpoint(tmp_path / C.CHECKPOINT_LAST)
    assert model.causal is False


def test_mismatched_checkpoint_names_the_file_and_the_difference(cache, tmp_path):
    T.train(tiny_cfg(**{"train.epochs": 1}), cache, tmp_path, progress=False)
    with pytest.raises(ValueError) as err:
        T.train(tiny_cfg(**{"model.hidden": 24}), cache, tmp_path, progress=False)
    msg = str(err.value)
    assert str(tmp_path / C.CHECKPOINT_LAST) in msg and "model.hidden" in msg and "--no-resume" in msg
    other = make_cache()  # same sizes, another step grid: the time bins differ
    other.vocab = Vocab(Bins(tuple(np.linspace(0.01, 2, 21))), other.vocab.dur_bins, name=other.vocab.name)
    with pytest.raises(ValueError, match="step bins differ: fitted on another corpus"):
        T.train(tiny_cfg(**{"train.epochs": 2}), other, tmp_path, progress=False)
    # Limits may change on resume; resume=False starts over despite the mismatch.
    T.train(tiny_cfg(**{"train.epochs": 2}), cache, tmp_path, progress=False)
    h = T.train(tiny_cfg(**{"model.hidden": 24, "train.epochs": 1}), cache, tmp_path, resume=False, progress=False)
    assert h["epoch"] == [1.0]


def test_resume_from_a_checkpoint_without_training_state_says_so(cache, tmp_path):
    cfg = tiny_cfg()
    C.save_checkpoint(tmp_path / C.CHECKPOINT_LAST, MD.build_from_config(cfg, cache.vocab), cfg, cache.vocab)
    with pytest.raises(ValueError, match="holds no training state .*--no-resume") as err:
        T.train(cfg, cache, tmp_path, progress=False)
    assert str(tmp_path / C.CHECKPOINT_LAST) in str(err.value)


def test_a_checkpoint_from_before_a_setting_existed_still_resumes(cache, tmp_path):
    """A setting added since the checkpoint was written counts as its default: no "other settings"."""
    cfg = tiny_cfg(**{"train.max_steps": 3})
    T.train(cfg, cache, tmp_path, progress=False)
    ckpt = torch.load(tmp_path / C.CHECKPOINT_LAST, weights_only=False)
    del ckpt["config"]["train"]["carry_state"], ckpt["config"]["model"]["interval_emb"]  # as an older version wrote it
    assert C.config_differences(ckpt, cfg, cache.vocab) == []
    assert C.config_differences(ckpt, cfg.override(**{"model.interval_emb": 8}), cache.vocab) == ["model.interval_emb: 0 -> 8"]
    torch.save(ckpt, tmp_path / C.CHECKPOINT_LAST)
    h = T.train(cfg.override(**{"train.max_steps": 5}), cache, tmp_path, progress=False)
    assert h["step"][-1] == 5


def test_train_state_round_trips_through_a_checkpoint_dict():
    state = T.TrainState(epoch=2, batch_in_epoch=3, step=11, history={"epoch": [1.0]}, best_val_loss=0.5)
    torch.manual_seed(1)
    saved = state.to_checkpoint()
    expected = torch.rand(3)
    torch.manual_seed(99)  # whatever ran since, restoring brings back the saved generators
    back = T.TrainState.from_checkpoint({**saved, "optimizer": {}}, "ckpt.pt")
    assert back == state and torch.equal(torch.rand(3), expected)


class RecordingBar:
    """Stands in for tqdm: records the totals the loop gives the bar."""

    made = []

    def __init__(self, total, initial=0, unit=""):
        self.total, self.n, self.totals = total, initial, [total]
        RecordingBar.made.append(self)

    def update(self, k):
        self.n += k
        self.totals.append(self.total)

    def close(self):
        self.closed = (self.n, self.total)

    def set_description(self, *args, **kwargs):
        pass

    set_postfix = write = set_description


def test_the_progress_bar_counts_to_the_time_budget_when_it_ends_the_run_first(cache, tmp_path, monkeypatch):
    RecordingBar.made = []
    monkeypatch.setattr(T, "tqdm", RecordingBar)
    cfg = tiny_cfg(**{"train.epochs": 1000, "train.time_budget_s": 30.0})
    h = T.train(cfg, cache, tmp_path, clock=FakeClock(0.5))
    (bar,) = RecordingBar.made
    steps = h["step"][-1]
    assert bar.totals[0] == 1000 * 4 > 10 * steps  # the epochs' steps: what the bar counted to before
    assert all(abs(t - steps) <= 0.2 * steps for t in bar.totals[len(bar.totals) // 2:])  # the budget's, early on
    assert bar.closed == (steps, steps)  # and it ends full


def test_checkpoints_carry_their_corpus_licence(cache, tmp_path):
    from melody_utils.data import maestro, sources

    T.train(tiny_cfg(**{"data.source": "embedded", "train.max_steps": 2}), cache, tmp_path / "piano", progress=False)
    piano = C.read_checkpoint(tmp_path / "piano" / C.CHECKPOINT_LAST)
    assert piano["licence"] == sources.LICENCES["piano"] and "CC BY-SA 3.0 DE" in C.describe(piano)
    folder = tmp_path / "somewhere" / "maestro-v3.0.0"  # a MAESTRO folder anywhere is MAESTRO
    folder.mkdir(parents=True)
    (folder / maestro.METADATA_CSV).write_text(",".join(maestro.METADATA_COLUMNS) + "\n")
    T.train(tiny_cfg(**{"data.source": str(folder), "train.max_steps": 2}), cache, tmp_path / "m", progress=False)
    for name in (C.CHECKPOINT_LAST, C.CHECKPOINT_BEST):
        ckpt = C.read_checkpoint(tmp_path / "m" / name)
        assert ckpt["licence"] == maestro.MAESTRO_LICENCE
        assert C.training_summary(ckpt)["licence"] == maestro.MAESTRO_LICENCE and "non-commercial" in C.describe(ckpt)
    assert sources.source_licence(str(tmp_path)) == ""  # another folder's licence is its owner's to name


def _scripted_validation(monkeypatch, losses):
    """Validation passes that return ``losses`` in turn (the heads' parts stand in as thirds)."""
    it = iter(losses)

    def fake(model, loader, device, ctx=None):
        v = next(it)
        return v, {"pitch": v / 3, "step": v / 3, "duration": v / 3}

    monkeypatch.setattr(T, "validation_loss", fake)


def test_early_stopping_stops_after_patience_epochs_without_improvement_and_keeps_the_best(cache, tmp_path,
                                                                                          monkeypatch, capsys):
    _scripted_validation(monkeypatch, [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0])
    cfg = tiny_cfg(**{"train.epochs": 7, "train.patience": 3})
    h = T.train(cfg, cache, tmp_path, progress=True)
    assert h["val_loss"] == [5.0, 4.0, 4.5, 4.2, 4.1]  # three epochs after the best (4.0), it stopped
    assert T.evaluations_since_best(h) == 3
    out = capsys.readouterr().out
    assert "early stopping (train.patience=3)" in out and "4.0000 nats/note at epoch 2.00" in out
    best, last = C.read_checkpoint(tmp_path / C.CHECKPOINT_BEST), C.read_checkpoint(tmp_path / C.CHECKPOINT_LAST)
    assert best["best_val_loss"] == 4.0 and best["step"] == h["step"][1] and last["step"] == h["step"][-1]
    again = T.train(cfg, cache, tmp_path, progress=True)  # resumed: the patience is spent already
    assert again == h and "nothing to train" in capsys.readouterr().out
    more = T.train(tiny_cfg(**{"train.epochs": 7, "train.patience": 5}), cache, tmp_path, progress=False)
    assert more["val_loss"] == [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0]  # more patience: it goes on from where it stopped


def test_without_patience_the_run_trains_every_epoch(cache, tmp_path, monkeypatch):
    _scripted_validation(monkeypatch, [5.0, 6.0, 7.0, 8.0])
    h = T.train(tiny_cfg(**{"train.epochs": 4}), cache, tmp_path, progress=False)
    assert h["val_loss"] == [5.0, 6.0, 7.0, 8.0] and T.evaluations_since_best(h) == 3
    with pytest.raises(ValueError, match="train.patience must be an integer >= 0"):
        T.train(tiny_cfg(**{"train.patience": -1}), cache, tmp_path / "bad", progress=False)


def test_checkpoints_are_written_when_due_and_at_the_end_the_best_kept_in_memory_until_then(cache, tmp_path,
                                                                                           monkeypatch):
    _scripted_validation(monkeypatch, [5.0, 4.0, 4.5, 4.2, 3.0, 2.0, 1.0])
    written = []
    real_save = T.save_checkpoint

    def counting(path, *args, **kwargs):
        written.append((path.name, kwargs["step"]))
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(T, "save_checkpoint", counting)
    h = T.train(tiny_cfg(**{"train.epochs": 4}), cache, tmp_path, progress=False, checkpoint_every_s=1e6)
    assert written == [(C.CHECKPOINT_BEST, h["step"][1]), (C.CHECKPOINT_LAST, h["step"][-1])]  # once each, at the end
    best = C.read_checkpoint(tmp_path / C.CHECKPOINT_BEST)
    assert best["best_val_loss"] == 4.0 and len(best["history"]["epoch"]) == 2  # the state of epoch 2
    model, _, _, _ = C.load_checkpoint(tmp_path / C.CHECKPOINT_BEST)  # the weights of epoch 2, not of the end
    last = C.load_checkpoint(tmp_path / C.CHECKPOINT_LAST)[0]
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))
    written.clear()
    T.train(tiny_cfg(**{"train.epochs": 3}), cache, tmp_path / "every", progress=False, checkpoint_every_s=0)
    assert [name for name, _ in written].count(C.CHECKPOINT_LAST) == 3  # 0: at every epoch's end


def test_performed_windows_need_independent_windows(cache, tmp_path):
    with pytest.raises(ValueError, match="data.perform .* set train.carry_state=false"):
        T.train(tiny_cfg(**{"data.perform": 0.5, "train.carry_state": True}), cache, tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds none"):  # a cache made without performed copies
        T.train(tiny_cfg(**{"data.perform": 0.5}), cache, tmp_path, progress=False)
