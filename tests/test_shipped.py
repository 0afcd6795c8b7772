"""The shipped model's plumbing: inference export, generate/evaluate fallback, fine-tuning (--init), the builder.

Until the real data/pretrained/piano_lstm.pt exists these tests build a small exported checkpoint in
tmp_path and point checkpoint.SHIPPED_CHECKPOINT at it; one test checks the real file when present.
"""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from melody_utils.model import checkpoint as ckpts
from melody_utils.cli import commands as cli
from melody_utils.data import corpus
from melody_utils.model.checkpoint import (CHECKPOINT_BEST, CHECKPOINT_LAST, composer_names, export_inference, load_checkpoint,
                                     read_checkpoint)
from melody_utils.config import REPO_ROOT, get_config
from melody_utils.device import cpu_has_native_bf16
from melody_utils.music.tokens import Vocab
from melody_utils.train.loop import train

from helpers import write_midi_folder

SHIPPED_IN_CHECKOUT = REPO_ROOT / "data" / "pretrained" / "piano_lstm.pt"


def _cfg(tmp_path, name, **changes):
    return get_config("tiny", **{"train.device": "cpu", "train.out_dir": str(tmp_path / name), "data.source": "embedded",
                                 **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny causal model trained 60 steps on the embedded corpus: (cfg, cache, its out_dir)."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = _cfg(tmp, "run")
    cache = corpus.prepare(cfg.data, cache_dir=tmp / "cache", progress=False)
    train(cfg, cache, progress=False)
    return cfg, cache, Path(cfg.train.out_dir), tmp / "cache"


@pytest.fixture()
def shipped(trained, tmp_path, monkeypatch):
    """An exported copy of the tiny model as the shipped model."""
    path = export_inference(trained[2] / CHECKPOINT_BEST, tmp_path / "pretrained" / "piano_lstm.pt", corpus="embedded",
                            licence="test licence")
    monkeypatch.setattr(ckpts, "SHIPPED_CHECKPOINT", path)
    return path


def test_export_keeps_weights_in_fp16_and_drops_training_state(trained, shipped):
    src = read_checkpoint(trained[2] / CHECKPOINT_BEST)
    out = read_checkpoint(shipped)
    assert out["kind"] == ckpts.INFERENCE and not {"optimizer", "scaler", "rng", "running"} & set(out)
    assert all(v.dtype == torch.float16 for v in out["model_state"].values() if v.is_floating_point())
    assert out["vocab"] == src["vocab"] and out["config"] == src["config"]
    s = out["summary"]
    assert (s["steps"], s["corpus"], s["licence"], s["device"]) == (src["step"], "embedded", "test licence", "cpu")
    assert s["best_val_loss"] == pytest.approx(src["best_val_loss"]) and s["train_seconds"] > 0
    assert shipped.stat().st_size < (trained[2] / CHECKPOINT_BEST).stat().st_size / 2
    model, vocab, _, _ = load_checkpoint(shipped)  # on the CPU, in fp32, equal to the weights rounded to fp16
    for name, p in model.state_dict().items():
        ref = src["model_state"][name]
        assert p.dtype == ref.dtype
        if p.is_floating_point():
            torch.testing.assert_close(p, ref.half().float())


def test_resuming_from_an_inference_checkpoint_suggests_init(trained, shipped, tmp_path):
    cfg, cache, _, _ = trained
    out = tmp_path / "resume"
    out.mkdir()
    shutil.copy(shipped, out / CHECKPOINT_LAST)
    with pytest.raises(ValueError, match=r"inference checkpoint.*--init"):
        train(cfg.override(**{"train.out_dir": str(out)}), cache, progress=False)


def test_generate_falls_back_to_the_shipped_model_and_says_so(trained, shipped, tmp_path, capsys):
    base = ["--preset", "tiny", "--device", "cpu", "--quiet", "--cache-dir", str(trained[3]), "--n-notes", "16"]
    code = cli.main(["generate", *base, "--out-dir", str(tmp_path / "empty"), "--primer", "none"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "empty" / "improved_generated_output.midi").is_file()
    assert f"using the shipped model {shipped}, trained on embedded (test licence)" in out
    code = cli.main(["generate", *base, "--checkpoint", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "x.mid")])
    assert code == 1 and "checkpoint not found" in capsys.readouterr().err  # an explicit path stays an error


def test_evaluate_falls_back_to_the_shipped_model(trained, shipped, tmp_path, capsys):
    code = cli.main(["evaluate", "--preset", "tiny", "--device", "cpu", "--quiet", "--cache-dir", str(trained[3]),
                     "--out-dir", str(tmp_path / "empty"), "--samples", "2", "--n-notes", "16"])
    out = capsys.readouterr().out
    assert code == 0 and "using the shipped model" in out and "nats" in out


def test_fine_tuning_starts_from_the_checkpoint_weights(trained, tmp_path):
    cfg, cache, run, _ = trained
    one_step = {"train.max_steps": 1, "train.epochs": 1}
    fresh = train(_cfg(tmp_path, "fresh", **one_step), cache, progress=False)
    tuned = train(_cfg(tmp_path, "tuned", **one_step), cache, progress=False, init=run / CHECKPOINT_BEST)
    trained_loss = read_checkpoint(run / CHECKPOINT_BEST)["best_val_loss"]
    assert tuned["val_loss"][0] < fresh["val_loss"][0] - 1.0  # nats/note: it starts where the trained model was
    assert tuned["val_loss"][0] < trained_loss + 0.5


def test_init_takes_the_checkpoint_model_and_vocabulary(trained, tmp_path, capsys):
    """--init on another corpus: the checkpoint's sizes and bins, the cache tokenized with its vocabulary;
    resumes from the run's own ckpt_last.pt; contradicting settings are one error line."""
    _, _, run, cache_dir = trained
    midi = tmp_path / "midis"
    write_midi_folder(midi, n_good=6, notes_per_file=120)
    base = ["train", "--preset", "small", "--device", "cpu", "--quiet", "--cache-dir", str(cache_dir), "--source", str(midi),
            "--out-dir", str(tmp_path / "ft"), "--init", str(run / CHECKPOINT_BEST), "--set", "data.window=32"]
    assert cli.main([*base, "--max-steps", "2"]) == 0
    ckpt = read_checkpoint(tmp_path / "ft" / CHECKPOINT_LAST)
    src = read_checkpoint(run / CHECKPOINT_BEST)
    tuned_vocab, src_vocab = Vocab.from_dict(ckpt["vocab"]), Vocab.from_dict(src["vocab"])
    assert ckpt["config"]["model"] == src["config"]["model"] and tuned_vocab == src_vocab  # not the small preset's
    assert tuned_vocab.spread != src_vocab.spread  # the bins are the checkpoint's, the spread inside them this corpus's
    fitted = corpus.prepare(get_config("small", **{"data.source": str(midi)}).data, cache_dir=tmp_path / "c2", progress=False)
    assert fitted.vocab != Vocab.from_dict(src["vocab"])  # so the vocabulary really came from the checkpoint
    capsys.readouterr()
    assert cli.main([*base, "--max-steps", "4"]) == 0  # resumes the fine-tuning run, not the init checkpoint
    assert read_checkpoint(tmp_path / "ft" / CHECKPOINT_LAST)["step"] == 4
    assert cli.main([*base, "--set", "model.hidden=999"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.hidden=999 but the checkpoint has 64" in err
    assert cli.main([*base[:-4], "--init", str(tmp_path / "nope.pt")]) == 1
    assert "--init" in capsys.readouterr().err


def test_prepare_with_a_vocabulary_that_cannot_encode_the_corpus(tmp_path):
    midi = tmp_path / "midis"
    write_midi_folder(midi, n_good=3)
    narrow = Vocab.from_dict({**corpus.prepare(get_config("tiny", **{"data.source": str(midi)}).data,
                                               cache_dir=tmp_path / "c", progress=False).vocab.to_dict(),
                              "min_pitch": 100, "max_pitch": 108})
    with pytest.raises(ValueError, match="can be encoded with the checkpoint's vocabulary"):
        corpus.prepare(get_config("tiny", **{"data.source": str(midi)}).data, cache_dir=tmp_path / "c", progress=False,
                       vocab=narrow)


def test_build_script_trains_exports_and_writes_only_where_told(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("build_shipped_model", REPO_ROOT / "scripts" / "build_shipped_model.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    before = sorted(p for p in (REPO_ROOT / "data").rglob("*"))
    out, work, curve = tmp_path / "out" / "model.pt", tmp_path / "work", tmp_path / "curve" / "learning.png"
    argv = ["--device", "cpu", "--budget", "600", "--out", str(out), "--workdir", str(work), "--quiet", "--curve", str(curve),
            "--set", "model.hidden=32", "--set", "model.layers=1", "--set", "data.max_files=12",
            "--set", "train.max_steps=5", "--set", "data.window=32", "--set", "train.batch_size=16"]
    assert build.main(argv) == 0
    assert sorted(p for p in (REPO_ROOT / "data").rglob("*")) == before
    assert {p.name for p in tmp_path.iterdir()} == {"out", "work", "curve"} and [p.name for p in out.parent.iterdir()] == ["model.pt"]
    assert sorted(p.name for p in curve.parent.iterdir()) == ["learning.json", "learning.png"]
    assert curve.read_bytes()[:4] == b"\x89PNG" and json.loads(curve.with_suffix(".json").read_text())["step"][-1] == 5
    printed = capsys.readouterr().out
    assert "MB" in printed and "parameters" in printed and "nats/note" in printed
    assert "command: python scripts/build_shipped_model.py --device cpu --budget 600" in printed
    model, vocab, cfg, state = load_checkpoint(out)
    assert (cfg.model.hidden, cfg.data.window, cfg.train.time_budget_s) == (32, 32, 600.0)
    assert cfg.model.composers and composer_names(state) == list(vocab.composers) != []  # the shipped model takes --composer
    assert state["summary"]["held_out_nats_per_note"] > 0 and state["summary"]["licence"].startswith("CC BY-SA 3.0 DE")
    s = state["summary"]  # where and how long it trained, and what ended it
    assert s["device_name"].startswith("CPU") and s["train_wall_seconds"] > 0 and s["stopped_by"] == "the epoch or step limit"
    assert s["precision"] == ("bf16 autocast" if cpu_has_native_bf16() else "fp32") and s["built_at"][:2] == "20"
    assert cfg.train.patience > 0 and cfg.data.perform > 0 and cfg.train.cpu_bf16 == cpu_has_native_bf16()
    assert "stopped by the epoch or step limit" in printed and s["device_name"] in printed
    assert s["run_steps"] == 5 and s["run_epochs"] > 0 and 0 < s["run_train_seconds"] <= s["train_wall_seconds"]
    assert "piece memory:" in printed and {"strength", "fit"} <= set(state["memory"])  # fitted on its validation pieces


@pytest.mark.skipif(not SHIPPED_IN_CHECKOUT.is_file(), reason=f"{SHIPPED_IN_CHECKOUT} is not built yet "
                    "(scripts/build_shipped_model.py)")
def test_the_shipped_model_loads_on_cpu_and_plays_with_dynamics():
    from melody_utils.generate.sample import model_generate_fn

    model, vocab, cfg, state = load_checkpoint(SHIPPED_IN_CHECKOUT, device="cpu")
    embedded = corpus.prepare(get_config("small", **{"data.source": cfg.data.source}).data, progress=False)
    assert vocab == embedded.vocab and vocab.velocity_bins > 0
    notes = model_generate_fn(model, vocab, progress=False)(temperature=1.0, top_k=0, top_p=0.95, n_notes=64, seed=0,
                                                            primer=None)
    assert len(notes) == 64 and len(np.unique(notes.velocity)) >= 5
    assert len(vocab.spread) == 3  # stored with it, or (a model built before spreads) the piano corpus's
    grid = model_generate_fn(model, vocab.on_grid(), progress=False)(temperature=1.0, top_k=0, top_p=0.95, n_notes=64,
                                                                      seed=0, primer=None)
    np.testing.assert_array_equal(vocab.encode(grid), vocab.encode(notes))  # the same ids, played inside their bins
    assert len(np.unique(notes.velocity)) > len(np.unique(grid.velocity))


def test_quickstart_comparison_scores_both_models_on_the_same_pieces(trained, shipped, tmp_path, monkeypatch):
    from melody_utils.evaluate import report as metrics

    _, cache, run, _ = trained
    mine, theirs = metrics.compare_with_shipped(run / CHECKPOINT_BEST, cache)  # the shipped one is its fp16 export
    assert mine.startswith("held-out test split") and "this run's model" in mine
    nats = [float(line.split(" model ")[1].split()[0]) for line in (mine, theirs)]
    assert nats[0] > 1 and nats[1] == pytest.approx(nats[0], abs=0.01)
    other = corpus.prepare(get_config("tiny", **{"data.source": "embedded", "data.n_step_bins": 20}).data,
                           cache_dir=tmp_path / "c", progress=False)
    assert "not compared, its vocabulary differs" in metrics.compare_with_shipped(shipped, other)[1]
    monkeypatch.setattr(ckpts, "SHIPPED_CHECKPOINT", tmp_path / "absent.pt")
    assert "not compared" in metrics.compare_with_shipped(shipped, cache)[1]


def test_notebook_04_finds_the_shipped_model_when_notebook_03_has_not_run(trained, shipped, tmp_path):
    from melody_utils.train import runs

    path, about = runs.find_checkpoint(tmp_path / "outputs")
    assert path == shipped and about.startswith(f"the shipped model {shipped}, trained on embedded") and "notebook 03" in about
    run = tmp_path / "outputs" / "run-1"
    run.mkdir(parents=True)
    shutil.copy(trained[2] / CHECKPOINT_BEST, run / CHECKPOINT_BEST)
    assert runs.find_checkpoint(tmp_path / "outputs")[0] == run / CHECKPOINT_BEST  # a trained model comes first
