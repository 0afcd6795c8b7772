"""Tests of melody_utils.config: presets, the preset picked by its variable, sizes per model kind, defaults."""

import os

import pytest

from melody_utils.config import PRESETS, Config, get_config
from melody_utils.model.lstm import build_model, count_parameters
from melody_utils.music.tokens import seed_vocab


def test_env_var_picks_the_preset(monkeypatch):
    monkeypatch.setenv("MELODY_PRESET", "colab")
    assert get_config().preset == "colab"
    assert get_config("tiny").preset == "tiny"  # an explicit argument wins


def test_unknown_preset_and_key_are_named(monkeypatch):
    monkeypatch.setenv("MELODY_PRESET", "huge")
    with pytest.raises(ValueError, match="MELODY_PRESET"):
        get_config()
    with pytest.raises(ValueError, match="train.epoch"):
        get_config("tiny", **{"train.epoch": 3})


def test_presets_differ_only_in_sizes():
    small, tiny = get_config("small"), get_config("tiny")
    assert tiny.model.hidden < small.model.hidden and tiny.train.max_steps > 0
    assert (tiny.model.arch, tiny.data.bins) == (small.model.arch, small.data.bins)
    for name in PRESETS:
        assert Config.from_dict(get_config(name).to_dict()) == get_config(name)


def test_window_models_get_their_own_sizes_and_explicit_values_win():
    vocab = seed_vocab()
    adv = get_config("colab", **{"model.arch": "advanced"})
    assert count_parameters(build_model(adv.model, vocab, 50)) == pytest.approx(20.6e6, rel=0.05)
    base = get_config("small", **{"model.arch": "baseline"})
    assert count_parameters(build_model(base.model, vocab, 50)) == pytest.approx(1.0e6, rel=0.05)
    assert not adv.model.chained
    assert get_config("colab", **{"model.arch": "advanced", "model.hidden": 128}).model.hidden == 128


def test_advanced_on_a_gpu_preset_trains_large_batches_of_sampled_windows_unless_told_otherwise():
    adv = get_config("colab", **{"model.arch": "advanced"})
    assert adv.train.batch_size >= 1024 and 0 < adv.train.epoch_windows  # the GPU throughput setting
    assert get_config("colab").train.epoch_windows == 0  # the causal default keeps whole epochs
    told = get_config("colab", **{"model.arch": "advanced", "train.batch_size": 64, "train.epoch_windows": 0})
    assert (told.train.batch_size, told.train.epoch_windows) == (64, 0)  # explicit train.* values win too


def test_the_config_default_run_is_the_outputs_folder():
    assert get_config("tiny").train.out_dir == os.environ["MELODY_OUTPUTS_DIR"]
