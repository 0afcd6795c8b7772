"""Tests of melody_utils.cli.primers: ``--primer FILE`` primes with the file's end (its last
``--primer-seconds`` or ``--primer-notes``) and the music continues after it; mistakes are one line."""

import numpy as np
import torch

from melody_utils.cli import commands as cli
from melody_utils.music.midi import midi_to_notes

from helpers import cli_fails

torch.set_num_threads(1)


def _primer_file(tmp_path):
    """40 notes, one every 0.5 s, each pitch different from its neighbours: the file ends at 19.9 s."""
    from melody_utils.music.midi import Notes, notes_to_midi

    pitches = 48 + (np.arange(40) * 7) % 40
    notes = Notes(pitches, np.arange(40) * 0.5, np.full(40, 0.4), np.full(40, 70))
    return notes_to_midi(notes, tmp_path / "my_piece.mid"), notes


def test_primer_seconds_primes_with_the_files_last_seconds_and_continues_after_them(run, tmp_path, capsys):
    common, out = run
    path, notes = _primer_file(tmp_path)
    song = tmp_path / "continued.mid"
    args = ["generate", *common, "--out-dir", str(out), "--primer", str(path), "--primer-seconds", "5", "--n-notes", "6",
            "--seed", "2", "--output", str(song)]
    assert cli.main(args + ["--keep-primer"]) == 0
    assert "its last 5 s: 10 notes" in capsys.readouterr().out  # onsets 15.0 ... 19.5 of a file ending at 19.9 s
    back = midi_to_notes(song, sustain=False)
    assert len(back) == 10 + 6
    np.testing.assert_array_equal(back.pitch[:10], notes.pitch[30:])  # exactly the last 5 seconds, in order
    assert back.start[0] == 0.0 and np.all(back.start[10:] >= back.start[9])  # the new notes come after the primer
    assert cli.main(args) == 0  # without --keep-primer: the continuation alone
    assert len(midi_to_notes(song, sustain=False)) == 6


def test_a_file_primer_is_the_whole_file_by_default_and_its_end_with_primer_notes(run, tmp_path, capsys):
    common, out = run
    path, notes = _primer_file(tmp_path)
    song = tmp_path / "continued.mid"
    base = ["generate", *common, "--out-dir", str(out), "--primer", str(path), "--n-notes", "3", "--keep-primer",
            "--output", str(song)]
    assert cli.main(base) == 0
    assert "the whole file: 40 notes" in capsys.readouterr().out
    np.testing.assert_array_equal(midi_to_notes(song, sustain=False).pitch[:40], notes.pitch)
    assert cli.main(base + ["--primer-notes", "4"]) == 0
    np.testing.assert_array_equal(midi_to_notes(song, sustain=False).pitch[:4], notes.pitch[-4:])  # the file's end


def test_primer_seconds_and_soundfont_mistakes_are_one_line(run, tmp_path, capsys):
    common, out = run
    path, _ = _primer_file(tmp_path)
    gen = ["generate", *common, "--out-dir", str(out), "--n-notes", "3"]
    cli_fails(gen + ["--primer-seconds", "4"], capsys, "--primer-seconds", "--primer test")
    cli_fails(gen + ["--primer", str(path), "--primer-seconds", "0.01"], capsys, "my_piece.mid", "no note starts in its last 0.01 s")
    cli_fails(gen + ["--soundfont", str(tmp_path / "x.sf2")], capsys, "--soundfont", "--wav")
    cli_fails(gen + ["--wav", str(tmp_path / "a.wav"), "--soundfont", str(tmp_path / "x.sf2")], capsys, "--soundfont", "x.sf2")
    assert cli.main(gen + ["--num-outputs", "0"]) == 2 and "--num-outputs" in capsys.readouterr().err
