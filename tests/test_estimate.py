"""The training-time estimate: measured throughput, the config's notes, the detected device."""

import math

import pytest

from melody_utils.train import estimate as E
from melody_utils.data import streams
from melody_utils.data.windows import window_starts
from melody_utils.model.lstm import build_from_config
from helpers import make_cache, tiny_cfg

CPU = E.Device("cpu", "a 2-core CPU", 2)
H100 = E.Device("cuda", "NVIDIA H100 80GB HBM3", 16)
T4 = E.Device("cuda", "Tesla T4", 2)


def params(cfg, cache):
    return sum(p.numel() for p in build_from_config(cfg, cache.vocab).parameters())


def test_supervised_notes_counts_every_position_of_every_training_window():
    cache = make_cache()
    cfg = tiny_cfg(**{"train.epochs": 3, "train.max_steps": 0})
    n_windows = len(window_starts(cache.offsets, cache.piece_indices("train"), cfg.data.window, cfg.data.stride))
    steps, notes = E.supervised_notes(cfg, cache)
    assert steps == 3 * math.ceil(n_windows / cfg.train.batch_size)
    assert notes == 3 * n_windows * cfg.data.window
    capped_steps, capped_notes = E.supervised_notes(cfg.override(**{"train.max_steps": 2}), cache)
    assert capped_steps == 2 and capped_notes == 2 * cfg.train.batch_size * cfg.data.window
    sampled = E.supervised_notes(cfg.override(**{"train.epoch_windows": 5}), cache)
    assert sampled == (3 * math.ceil(5 / cfg.train.batch_size), 3 * 5 * cfg.data.window)


def test_supervised_notes_of_carried_state_streams_count_the_streams_batches():
    cache = make_cache()
    cfg = tiny_cfg(**{"train.epochs": 3, "train.max_steps": 0, "train.carry_state": True, "data.stride": 4})
    batches = len(streams.StreamDataset(cache, "train", cfg.data.window, cfg.train.batch_size))
    assert E.supervised_notes(cfg, cache) == (3 * batches, 3 * batches * cfg.train.batch_size * cfg.data.window)


def test_cpu_estimate_divides_the_notes_by_the_measured_rate_scaled_by_model_size():
    cache = make_cache()
    cfg = tiny_cfg()
    est = E.training_estimate(cfg, cache, CPU)
    _, notes = E.supervised_notes(cfg, cache)
    m = [m for m in E.MEASURED if m.arch == "causal" and m.device == "cpu"][0]
    assert est.scaled  # a 16-unit model is far from the measured 1.05 M parameters
    assert est.seconds == pytest.approx(notes / (m.notes_per_s * m.parameters / params(cfg, cache)))
    text = str(est)
    assert text.startswith("expected training time on a 2-core CPU: about ")
    assert "measured on a 2-core CPU" in text and "scaled by model size" in text
    assert "sooner" in str(E.training_estimate(cfg, cache, E.Device("cpu", "a 8-core CPU", 8)))


def test_a_measured_size_is_used_as_is(monkeypatch):
    cache = make_cache()
    cfg = tiny_cfg()
    monkeypatch.setattr(E, "MEASURED", (E.Measurement("causal", "h100", params(cfg, cache), 64, 1000.0, "test"),))
    got = E.training_estimate(cfg, cache, H100)
    assert not got.scaled and got.seconds == pytest.approx(got.notes / 1000.0)
    assert "measured on an H100" in str(got) and "scaled" not in str(got)


def test_an_unmeasured_gpu_is_named_and_its_figure_said_to_be_extrapolated():
    cache = make_cache()
    cfg = tiny_cfg()
    t4, h100 = E.training_estimate(cfg, cache, T4), E.training_estimate(cfg, cache, H100)
    assert t4.seconds == h100.seconds and t4.extrapolated and not h100.extrapolated
    text = str(t4)
    assert text.startswith(f"expected training time on Tesla T4: extrapolated, at least {E.format_duration(h100.seconds)} (")
    assert "Extrapolated: Tesla T4 was not measured; the time is what an H100 takes" in text
    assert "2-4x" not in text
    assert str(h100).startswith(f"expected training time on NVIDIA H100 80GB HBM3: about {E.format_duration(h100.seconds)} (")


def test_the_preset_follows_the_device_unless_one_is_asked_for(monkeypatch):
    monkeypatch.delenv("MELODY_PRESET", raising=False)
    assert E.preset_for(T4) == ("colab", "picked for Tesla T4; set PRESET to override")
    assert E.preset_for(CPU)[0] == "small"
    assert E.preset_for(T4, "tiny") == ("tiny", "PRESET as set")
    monkeypatch.setenv("MELODY_PRESET", "tiny")
    assert E.preset_for(T4) == ("tiny", "from $MELODY_PRESET")
    with pytest.raises(ValueError, match="PRESET = 'huge' is not a preset"):
        E.preset_for(CPU, "huge")


def test_notebook_03_trains_colab_under_a_stand_in_gpu(monkeypatch, tmp_path):
    """The notebook's own cells, from its settings to the preset, with torch seeing a T4."""
    import jupytext
    import torch

    monkeypatch.delenv("MELODY_PRESET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    nb = jupytext.read(E.__file__.replace("melody_utils/train/estimate.py", "notebooks/03_train.py"))
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    upto = next(i for i, c in enumerate(code) if "get_config(" in c)
    scope = {}
    for source in code[: upto + 1]:
        exec(compile(source, "03_train.py", "exec"), scope)
    assert scope["device"].kind == "cuda" and scope["cfg"].preset == "colab"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    scope = {}
    for source in code[: upto + 1]:
        exec(compile(source, "03_train.py", "exec"), scope)
    assert scope["cfg"].preset == "small"


def test_an_unmeasured_architecture_is_named():
    with pytest.raises(ValueError, match="model.arch='other'"):
        E._closest("other", ("cpu",), 1000, 64)


def test_the_measurement_nearest_in_batch_is_used_on_a_gpu():
    """MusicLSTM_Advanced trains ~12x faster per note at batch 2048 than at 64 on a GPU: the estimate
    for a large-batch config uses the large-batch figure, on the GPU measured and on others."""
    cache = make_cache()
    cfg = tiny_cfg(**{"model.arch": "advanced"})
    for batch in (64, 2048):
        c = cfg.override(**{"train.batch_size": batch})
        on_h200 = E.training_estimate(c, cache, E.Device("cuda", "NVIDIA H200", 16))
        assert on_h200.measurement.device == "h200" and on_h200.measurement.batch == batch and on_h200.note == ""
        assert f"measured on an H200 for a 20.64 M-parameter model at batch {batch}" in str(on_h200)
        on_t4 = E.training_estimate(c, cache, T4)
        assert on_t4.measurement.batch == batch and "was not measured" in on_t4.note
    big, small = (E.training_estimate(cfg.override(**{"train.batch_size": b}), cache, T4) for b in (2048, 64))
    assert big.seconds / big.notes < small.seconds / small.notes / 5


@pytest.mark.parametrize("seconds, text", [(0.2, "1 s"), (40, "40 s"), (600, "10 min"), (3 * 3600, "3.0 h")])
def test_format_duration(seconds, text):
    assert E.format_duration(seconds) == text
