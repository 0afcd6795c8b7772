"""Run folders: continue or start anew without overwriting; which checkpoint notebook 04 uses; mismatches in words."""

import dataclasses
import datetime
import os

import pytest

from melody_utils.train import runs
from melody_utils.model import checkpoint as T
from melody_utils.model.lstm import build_from_config
from helpers import make_cache, tiny_cfg

NOW = datetime.datetime(2026, 11, 30, 21, 5)


def write_run(folder, cfg, cache, when: float, best: bool = True, epoch: int = 1):
    """A checkpoint pair as training leaves it after ``epoch`` epochs, its files dated ``when`` (epoch seconds)."""
    model = build_from_config(cfg, cache.vocab)
    names = (T.CHECKPOINT_LAST, T.CHECKPOINT_BEST) if best else (T.CHECKPOINT_LAST,)
    for name in names:
        T.save_checkpoint(folder / name, model, cfg, cache.vocab, epoch=epoch)
        os.utime(folder / name, (when, when))


@pytest.fixture
def setup(tmp_path):
    cache = make_cache()
    return tiny_cfg(**{"train.out_dir": str(tmp_path)}), cache, tmp_path


def test_continue_without_a_run_starts_in_the_outputs_folder(setup):
    cfg, cache, out = setup
    chosen, about = runs.choose_run(cfg, cache.vocab, "continue")
    assert chosen.train.out_dir == str(out) and "new run" in about


def test_new_never_reuses_a_folder(setup):
    cfg, cache, out = setup
    first, _ = runs.choose_run(cfg, cache.vocab, "new", now=NOW)
    assert first.train.out_dir == str(out / "run-20261130-2105")
    os.makedirs(first.train.out_dir)
    second, about = runs.choose_run(cfg, cache.vocab, "new", now=NOW)
    assert second.train.out_dir == str(out / "run-20261130-2105-2") and second.train.out_dir in about


def test_continue_picks_the_newest_run(setup):
    cfg, cache, out = setup
    write_run(out, cfg, cache, when=1000)
    (out / "run-b").mkdir()
    write_run(out / "run-b", cfg, cache, when=3000)
    (out / "run-a").mkdir()
    write_run(out / "run-a", cfg, cache, when=2000)
    chosen, about = runs.choose_run(cfg, cache.vocab, "continue")
    assert chosen.train.out_dir == str(out / "run-b") and "newest of 3" in about
    assert "finished" not in about


def test_continuing_a_finished_run_says_how_to_train_on(setup):
    cfg, cache, out = setup
    write_run(out, cfg, cache, when=1000, epoch=cfg.train.epochs)
    _, about = runs.choose_run(cfg, cache.vocab, "continue")
    assert "finished" in about and "train.epochs" in about and 'RUN = "new"' in about


def test_continuing_another_preset_says_what_differs_and_what_to_set(setup):
    cfg, cache, out = setup
    old = dataclasses.replace(cfg.override(**{"model.hidden": 24}), preset="small")
    write_run(out, old, cache, when=1000)
    with pytest.raises(ValueError) as err:
        runs.choose_run(cfg, cache.vocab, "continue")
    msg = str(err.value)
    assert "\n" not in msg and str(out) in msg
    assert "model.hidden: 24 -> 16" in msg
    assert 'PRESET = "small"' in msg and 'RUN = "new"' in msg
    # a new run beside it is fine and leaves the old one alone
    chosen, _ = runs.choose_run(cfg, cache.vocab, "new", now=NOW)
    assert chosen.train.out_dir != str(out) and (out / T.CHECKPOINT_LAST).is_file()


def test_unknown_run_mode_is_named(setup):
    cfg, cache, _ = setup
    with pytest.raises(ValueError, match="RUN must be one of 'continue', 'new'"):
        runs.choose_run(cfg, cache.vocab, "overwrite")


def test_find_checkpoint_names_the_newest_best_checkpoint(setup):
    cfg, cache, out = setup
    write_run(out, cfg, cache, when=1000)
    (out / "run-x").mkdir()
    write_run(out / "run-x", cfg, cache, when=5000, best=False)  # still training: no best yet
    path, about = runs.find_checkpoint(out)
    assert path == out / "run-x" / T.CHECKPOINT_LAST and str(path) in about
    write_run(out, cfg, cache, when=9000)
    assert runs.find_checkpoint(out)[0] == out / T.CHECKPOINT_BEST


def test_find_checkpoint_without_one_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "SHIPPED_CHECKPOINT", tmp_path / "absent.pt")  # else the shipped model plays
    (tmp_path / "run-empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run notebook 03"):
        runs.find_checkpoint(tmp_path)
