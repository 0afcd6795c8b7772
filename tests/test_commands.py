"""Tests of melody_utils.cli.commands: the command line run in-process through cli.main (tiny preset,
embedded corpus, a few steps). The trained ``run`` is a fixture in conftest.py."""

import os
import subprocess
import sys
import wave

import numpy as np
import pretty_midi
import pytest
import torch

from melody_utils.model import checkpoint as ckpts
from melody_utils.cli import commands as cli
from melody_utils.config import REPO_ROOT
from melody_utils.evaluate import sweep as SW
from melody_utils.model.checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, read_checkpoint
from melody_utils.music.midi import midi_to_notes
from melody_utils.train.loop import HISTORY_FILE

from helpers import cli_fails

torch.set_num_threads(1)


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("prepare", "train", "generate", "quickstart", "evaluate"):
        assert command in text
    for command in ("prepare", "train", "generate", "quickstart", "evaluate"):
        assert cli.main([command, "--help"]) == 0
    assert "--top-p" in capsys.readouterr().out


def test_train_writes_checkpoints_and_history(run):
    common, out = run
    assert (out / CHECKPOINT_BEST).is_file() and (out / CHECKPOINT_LAST).is_file() and (out / HISTORY_FILE).is_file()
    ckpt = read_checkpoint(out / CHECKPOINT_LAST)
    assert ckpt["step"] == 4 and ckpt["config"]["preset"] == "tiny" and ckpt["config"]["data"]["source"] == "embedded"
    memory = read_checkpoint(out / CHECKPOINT_BEST)["memory"]  # fitted at the end of training, for this model
    assert memory["fit"]["validation_pieces"] == 2 and len(memory["weights"]) == memory["order"]


@pytest.mark.parametrize("keep", [False, True])
def test_generate_writes_midi_with_requested_notes(run, tmp_path, capsys, keep):
    common, out = run
    midi = tmp_path / "song.mid"
    args = ["generate", *common, "--out-dir", str(out), "--n-notes", "30", "--output", str(midi), "--seed", "3"]
    assert cli.main(args + (["--keep-primer", "--primer-notes", "5"] if keep else [])) == 0
    notes = pretty_midi.PrettyMIDI(str(midi)).instruments[0].notes
    assert len(notes) == 30 + (5 if keep else 0)
    assert str(midi) in capsys.readouterr().out
    midi2 = tmp_path / "again.mid"
    args[args.index(str(midi))] = str(midi2)
    assert cli.main(args + (["--keep-primer", "--primer-notes", "5"] if keep else [])) == 0
    assert midi2.read_bytes() == midi.read_bytes()  # same seed, same music


def test_generate_from_midi_primer_and_default_output(run, tmp_path):
    common, out = run
    from melody_utils.music.midi import Notes, notes_to_midi

    primer = notes_to_midi(Notes.from_steps([60, 64, 67, 72], [0, 0.25, 0.25, 0.25], [0.3] * 4), tmp_path / "primer.mid")
    assert cli.main(["generate", *common, "--out-dir", str(out), "--n-notes", "12", "--primer", str(primer)]) == 0
    assert len(pretty_midi.PrettyMIDI(str(out / cli.DEFAULT_OUTPUT_NAME)).instruments[0].notes) == 12
    assert cli.main(["generate", *common, "--out-dir", str(out), "--n-notes", "7", "--primer", "none"]) == 0
    assert len(pretty_midi.PrettyMIDI(str(out / cli.DEFAULT_OUTPUT_NAME)).instruments[0].notes) == 7


def test_missing_files_and_unwritable_output(run, tmp_path, capsys, monkeypatch):
    common, out = run
    missing = tmp_path / "nowhere" / "ckpt.pt"
    cli_fails(["generate", *common, "--checkpoint", str(missing)], capsys, str(missing), "python -m melody_utils train")
    monkeypatch.setattr(ckpts, "SHIPPED_CHECKPOINT", tmp_path / "absent.pt")  # else the shipped model plays
    cli_fails(["generate", *common, "--out-dir", str(tmp_path / "empty")], capsys, CHECKPOINT_BEST)
    cli_fails(["generate", *common, "--out-dir", str(out), "--primer", str(tmp_path / "no.mid")], capsys, "--primer", "no.mid")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    cli_fails(["generate", *common, "--out-dir", str(out), "--output", str(blocker / "song.mid")], capsys, "--output", "file.txt")
    cli_fails(["generate", *common, "--out-dir", str(out), "--output", str(tmp_path)], capsys, "--output", "is a folder")
    bad_midi = tmp_path / "bad.mid"
    bad_midi.write_bytes(b"MThd garbage")
    cli_fails(["generate", *common, "--out-dir", str(out), "--primer", str(bad_midi)], capsys, "--primer", "bad.mid")
    cli_fails(["train", *common, "--source", str(tmp_path / "no_such_folder")], capsys, "no_such_folder")
    cli_fails(["train", *common, "--set", "model.width=3"], capsys, "model.width", code=2)  # settings: usage errors
    cli_fails(["train", *common, "--set", "model.hidden=big"], capsys, "model.hidden", "int", code=2)
    cli_fails(["generate", *common, "--out-dir", str(out), "--device", "tpu"], capsys, "'tpu'")


def test_checkpoint_mismatch_names_the_file_and_the_fix(run, capsys):
    common, out = run
    err = cli_fails(["train", *common, "--source", "embedded", "--out-dir", str(out), "--set", "model.hidden=24"],
                 capsys, str(out / CHECKPOINT_LAST), "model.hidden", "--no-resume")
    assert len(err.strip().splitlines()) == 1


def test_evaluate_command_passes_its_flags_to_evaluate_checkpoint(run, monkeypatch, capsys):
    from melody_utils.evaluate import report

    common, out = run
    seen = {}
    monkeypatch.setattr(report, "evaluate_checkpoint", lambda checkpoint, **kw: seen.update(kw, checkpoint=checkpoint) or {})
    monkeypatch.setattr(report, "format_report", lambda result: "the report")
    argv = ["evaluate", *common, "--checkpoint", "x.pt", "--samples", "3", "--top-p", "0.9", "--sweep-top-ps", "0.8,1"]
    assert cli.main(argv) == 0 and "the report" in capsys.readouterr().out
    assert str(seen["checkpoint"]) == "x.pt" and seen["n_samples"] == 3
    assert seen["sampling"] == {"top_p": 0.9}  # only the flags given change the checkpoint's sample section
    assert seen["sweep"] == {"temperatures": None, "top_ps": [0.8, 1.0]} and seen["device"] == "cpu"
    assert cli.main(["evaluate", *common, "--out-dir", str(out)]) == 0  # default: OUT_DIR/ckpt_best.pt
    assert seen["checkpoint"] == out / CHECKPOINT_BEST and seen["sweep"] is None and seen["sampling"] == {}
    flags = ["--n-notes", "50", "--temperature", "0.8", "--top-k", "3", "--top-p", "1", "--memory", "0"]
    assert cli.main(["evaluate", *common, "--out-dir", str(out), *flags]) == 0
    assert seen["sampling"] == {"n_notes": 50, "temperature": 0.8, "top_k": 3, "top_p": 1.0, "memory": 0.0}


@pytest.mark.parametrize("how", [["--source", "chorales"], ["--set", "data.source=chorales"]])
def test_evaluate_source_scores_the_named_corpus_with_the_checkpoints_vocabulary(run, tmp_path, capsys, how):
    import json

    from melody_utils.config import get_config
    from melody_utils.data import corpus

    common, out = run
    report = tmp_path / "chorales.md"
    argv = ["evaluate", *common, "--out-dir", str(out), "--samples", "2", "--n-notes", "16", "--report", str(report), *how,
            "--set", "data.max_files=24"]  # corpus settings take effect too
    assert cli.main(argv) == 0
    result = json.loads(report.with_suffix(".json").read_text())
    assert result["corpus"] == "chorales" and "corpus chorales" in capsys.readouterr().out
    # the notes scored are the chorales' test pieces (every note but each piece's first), in the model's vocabulary
    vocab = ckpts.load_checkpoint(out / CHECKPOINT_BEST)[1]
    data = get_config("tiny", **{"data.source": "chorales", "data.max_files": 24}).data
    pieces = corpus.prepare(data, cache_dir=common[common.index("--cache-dir") + 1], progress=False, vocab=vocab).split_tokens("test")
    assert result["nll"]["model"]["n_notes"] == sum(len(p) - 1 for p in pieces)
    piano = corpus.prepare(get_config("tiny").data, cache_dir=common[common.index("--cache-dir") + 1], progress=False)
    assert sum(len(p) - 1 for p in piano.split_tokens("test")) != result["nll"]["model"]["n_notes"]


@pytest.mark.parametrize("command, setting", [
    ("evaluate", "model.hidden=8"),  # the checkpoint's model
    ("evaluate", "data.bins=seed"),  # the checkpoint's vocabulary
    ("evaluate", "train.lr=0.1"),
    ("generate", "data.source=chorales"),  # generate plays the checkpoint; the corpus is not read
    ("generate", "model.layers=3"),
    ("prepare", "train.epochs=3"),
])
def test_a_setting_that_cannot_take_effect_is_an_error(run, capsys, command, setting):
    common, out = run
    argv = [command, *common, "--set", setting] + (["--out-dir", str(out)] if command != "prepare" else [])
    err = cli_fails(argv, capsys, f"--set {setting.split('=')[0]}", f"`{command}`", code=2)  # a usage error, before any work
    assert len(err.strip().splitlines()) == 1


def test_module_entry_point_exits_with_one_error_line(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "melody_utils", "generate", "--quiet", "--checkpoint", str(tmp_path / "x.pt")],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and str(tmp_path / "x.pt") in bad.stderr


@pytest.mark.parametrize("arch", ["causal", "advanced"])
def test_quickstart_trains_within_its_budget_and_writes_midi(run, tmp_path, capsys, arch):
    common, _ = run
    out = tmp_path / "qs"
    assert cli.main(["quickstart", *common, "--arch", arch, "--out-dir", str(out), "--max-steps", "3", "--n-notes", "12"]) == 0
    text = capsys.readouterr().out
    assert f"{arch} model" in text and f"at most {cli.QUICKSTART_BUDGET_S} s" in text
    assert read_checkpoint(out / CHECKPOINT_LAST)["config"]["model"]["arch"] == arch
    midi = pretty_midi.PrettyMIDI(str(out / "improved_generated_output.midi"))
    assert sum(len(i.notes) for i in midi.instruments) == 12


def test_other_torchrun_ranks_stay_quiet(run, monkeypatch, capsys):
    common, _ = run
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["prepare", *common, "--source", "embedded"]) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["prepare", *common, "--source", "embedded"]) == 0
    assert "pieces" in capsys.readouterr().out


def test_num_outputs_writes_different_numbered_pieces_and_a_stereo_wav_each(run, tmp_path, capsys):
    common, out = run
    song = tmp_path / "song.mid"
    assert cli.main(["generate", *common, "--out-dir", str(out), "--n-notes", "20", "--num-outputs", "3", "--seed", "4",
                     "--output", str(song), "--wav", str(tmp_path / "song.wav")]) == 0
    text = capsys.readouterr().out
    assert "3 takes of 20-20 notes in one batch" in text and not song.exists()
    pieces = []
    for i in (1, 2, 3):
        notes = midi_to_notes(tmp_path / f"song_{i}.mid")
        assert len(notes) == 20 and f"take {i}: " in text
        pieces.append(tuple(notes.pitch) + tuple(np.round(notes.start, 3)))
        with wave.open(str(tmp_path / f"song_{i}.wav")) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 44100, 2)
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert np.abs(pcm).max() > 1000  # not silent
    assert len(set(pieces)) == 3  # three different pieces


def test_generate_and_evaluate_take_the_newest_run_folder(run, tmp_path, capsys, monkeypatch):
    import shutil

    from melody_utils.evaluate import report as metrics

    common, out = run
    outputs = tmp_path / "outputs"
    shutil.copytree(out, outputs)
    newer = outputs / "run-20300101-0000"
    shutil.copytree(out, newer)
    os.utime(newer / CHECKPOINT_BEST, (2e9, 2e9))  # saved later than the outputs folder's own
    assert cli.main(["generate", *common, "--out-dir", str(outputs), "--n-notes", "3", "--primer", "none"]) == 0
    text = capsys.readouterr().out
    assert f"using the newest run in {outputs}: {newer / CHECKPOINT_BEST}" in text
    assert f"from {newer / CHECKPOINT_BEST}" in text
    seen = {}
    monkeypatch.setattr(metrics, "evaluate_checkpoint", lambda checkpoint, **kw: seen.update(checkpoint=checkpoint) or {})
    monkeypatch.setattr(metrics, "format_report", lambda result: "the report")
    assert cli.main(["evaluate", *common, "--out-dir", str(outputs)]) == 0
    assert seen["checkpoint"] == newer / CHECKPOINT_BEST


# ---------------------------------------------------------------- sizes, side effects, overwrites, messages


def test_caps_are_stated_in_help_and_a_larger_request_is_one_line(run, tmp_path, capsys):
    common, out = run
    assert cli.main(["generate", "--help"]) == 0 and cli.main(["evaluate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.count(f"at most {cli.MAX_N_NOTES:,}") == 2 and "(at most 32 MB)" in text
    assert cli.main(["prepare", "--help"]) == 0 and "files over 32 MB are skipped" in " ".join(capsys.readouterr().out.split())
    for argv in (["generate", "--n-notes", "1000000000"], ["generate", *common, "--set", "sample.n_notes=1000000000"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "n-notes" in err.replace("_", "-") and "100,000" in err
    huge = tmp_path / "huge.mid"
    with open(huge, "wb") as f:
        f.write(b"MThd")
        f.truncate((32 << 20) + 1)
    cli_fails(["generate", *common, "--out-dir", str(out), "--primer", str(huge)], capsys, "--primer", "huge.mid", "32 MB")


def test_generate_writes_nothing_it_does_not_name(run, tmp_path, capsys, monkeypatch):
    common, out = run
    empty_cache = tmp_path / "no_cache"
    argv = ["generate", *common, "--out-dir", str(out), "--primer", "none", "--n-notes", "8"]
    assert cli.main([*argv[:argv.index("--cache-dir")], "--cache-dir", str(empty_cache), *argv[argv.index("--cache-dir") + 2:],
                     "--output", str(tmp_path / "a.mid")]) == 0
    said = capsys.readouterr().out
    assert "originality: not checked (no token cache" in said and not empty_cache.exists()  # no cache built for it
    from melody_utils.evaluate import originality

    def read_only(path, write):
        raise PermissionError(f"cannot write to folder {path.parent}")

    monkeypatch.setattr(originality, "CACHE_AFTER_S", -1.0)  # the index would be saved beside the cache...
    monkeypatch.setattr(originality, "atomic_write_bytes", read_only)  # ...in a folder that cannot be written
    assert cli.main([*argv, "--output", str(tmp_path / "b.mid")]) == 0
    assert "originality: no 8-note sequence copied" in capsys.readouterr().out and (tmp_path / "b.mid").is_file()


def test_train_with_nothing_to_train_writes_nothing_and_says_so(run, tmp_path, capsys):
    common, _ = run
    out = tmp_path / "zero"
    code = cli.main(["train", *common, "--source", "embedded", "--out-dir", str(out), "--set", "train.epochs=0"])
    captured = capsys.readouterr()
    assert code in (1, 2)  # 2 where the config's own checks refuse the value first
    assert captured.err.startswith("error:") and len(captured.err.strip().splitlines()) == 1 and "train.epochs" in captured.err
    assert "checkpoints:" not in captured.out and not list(out.glob("ckpt_*"))


def test_quiet_prepare_still_names_the_files_it_skipped(tmp_path, capsys):
    from helpers import write_midi_folder

    folder = tmp_path / "midis"
    write_midi_folder(folder, n_good=3)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00")
    assert cli.main(["prepare", "--preset", "tiny", "--quiet", "--cache-dir", str(tmp_path / "cache"), "--source", str(folder)]) == 0
    said = capsys.readouterr().out
    assert "leaves out 1 file(s)" in said and f"{folder / 'broken.mid'}: could not read" in said


@pytest.mark.parametrize("setting", ["data.window=1", "sample.temperature=0", "sample.top_p=1.5"])
def test_settings_are_checked_when_set_for_every_section(run, capsys, setting):
    common, _ = run
    assert cli.main(["train", *common, "--source", "embedded", "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and setting.split("=")[0] in err


# ---------------------------------------------------------------- evaluate: the report and its figures


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained tiny checkpoint (OUT_DIR/ckpt_best.pt) and its token cache: the CLI's argv prefix."""
    import torch

    from melody_utils.data import corpus
    from melody_utils.model.checkpoint import save_checkpoint
    from melody_utils.config import get_config
    from melody_utils.model.lstm import build_from_config

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run")
    cfg = get_config("tiny", **{"data.source": "embedded", "data.max_files": 24, "model.hidden": 8,
                                "sample.n_notes": 32, "train.out_dir": str(out)})
    cache = corpus.prepare(cfg.data, cache_dir=out / "cache", progress=False)
    save_checkpoint(out / "ckpt_best.pt", build_from_config(cfg, cache.vocab), cfg, cache.vocab)
    return ["evaluate", "--out-dir", str(out), "--cache-dir", str(out / "cache"), "--device", "cpu", "--quiet"]


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate_prints_and_writes_the_report(tiny_run, tmp_path, capsys):
    import json

    report = tmp_path / "eval" / "report.md"
    assert cli.main(tiny_run + ["--samples", "2", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| 3-gram |" in out and "Mean OA" in out
    assert report.read_text() in out
    result = json.loads(report.with_suffix(".json").read_text())
    assert result["stats"]["n_generated"] == 2 and len(result["piece_stats"]["generated"]) == 2
    assert "sweep" not in result and "Sampling sweep" not in out
    assert (tmp_path / "eval" / "report_distributions.png").read_bytes().startswith(PNG_MAGIC)
    assert "](report_distributions.png)" in report.read_text()
    assert not (tmp_path / "eval" / "report_sweep.png").exists()

    assert cli.main(["evaluate", "--samples", "1"]) == 2  # a distribution needs 2 pieces
    assert "--samples" in capsys.readouterr().err
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--quiet"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_cli_evaluate_sweep_writes_the_table_and_the_figures(tiny_run, tmp_path, capsys):
    import json

    argv = tiny_run + ["--samples", "2", "--sweep-temperatures", "0.9,1.1", "--sweep-top-ps", "1.0, 0.8",
                       "--report", str(tmp_path / "eval")]  # no suffix: eval.md
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    report = (tmp_path / "eval.md").read_text()
    assert report in out and "## Sampling sweep (2 pieces of 32 notes per setting" in report
    assert "](eval_sweep.png)" in report and "](eval_distributions.png)" in report
    for name in ("eval_sweep.png", "eval_distributions.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC), name
    sweep = json.loads((tmp_path / "eval.json").read_text())["sweep"]
    settings = [(r["temperature"], r["top_p"]) for r in sweep["rows"]]
    assert settings == [(0.9, 1.0), (0.9, 0.8), (1.1, 1.0), (1.1, 0.8)]
    for t, p in settings:
        assert f"| {t:g} | {p:g} |" in report
    assert sweep["max_degenerate_rate"] == pytest.approx(sweep["reference_degenerate_rate"] + SW.DEGENERATE_MARGIN)
    best = sweep["best"]
    assert (best["temperature"], best["top_p"]) in settings and report.count("**suggested**") == 1

    assert cli.main(tiny_run + ["--sweep-top-ps", "0.9,1.5"]) == 2  # a bad grid is a usage error, before any work
    err = capsys.readouterr().err
    assert "--sweep-top-ps" in err and "'0.9,1.5'" in err
