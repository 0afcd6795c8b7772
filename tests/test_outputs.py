"""Tests of melody_utils.cli.outputs: an output flag replaces an earlier output of its own kind, never a
file of another kind without --force, and says so before any work."""

import pytest
import torch

from melody_utils.cli import commands as cli

from helpers import cli_fails

torch.set_num_threads(1)


def test_outputs_refuse_to_replace_files_of_another_kind(run, tmp_path, capsys, monkeypatch):
    common, out = run
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    argv = ["generate", *common, "--out-dir", str(out), "--primer", "none", "--n-notes", "8"]
    cli_fails([*argv, "--output", str(notes)], capsys, f"--output {notes} exists and is not a MIDI file", "--force")
    song = tmp_path / "song.mid"
    cli_fails([*argv, "--output", str(song), "--wav", str(notes)], capsys, f"--wav {notes} exists and is not a WAV file")
    assert notes.read_text() == "my notes" and not song.exists()  # refused before any work
    assert cli.main([*argv, "--output", str(song)]) == 0 and cli.main([*argv, "--output", str(song)]) == 0
    assert f"MIDI: {song} (replaced the earlier MIDI file)" in capsys.readouterr().out
    assert cli.main([*argv, "--output", str(notes), "--force"]) == 0 and notes.read_bytes().startswith(b"MThd")
    from melody_utils.evaluate import report as metrics

    monkeypatch.setattr(metrics, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated before checking --report"))
    mine = tmp_path / "results.md"
    mine.write_text("# My results\n")
    cli_fails(["evaluate", *common, "--out-dir", str(out), "--report", str(mine)], capsys, f"--report {mine} exists", "--force")
    (tmp_path / "r.md").write_text("# Evaluation of an earlier model\n")
    (tmp_path / "r.json").write_text("my data, not a report's JSON")
    cli_fails(["evaluate", *common, "--out-dir", str(out), "--report", str(tmp_path / "r.md")], capsys, "r.json exists")
    assert mine.read_text() == "# My results\n"
