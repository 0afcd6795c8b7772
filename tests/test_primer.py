"""A MIDI file or upload as the primer (melody_utils/generate/primer.py): the music continues from the
file's end (its last seconds, its last notes); too large is one line, before it is written anywhere."""

import numpy as np
import pytest

from melody_utils.generate import primer
from melody_utils.generate.primer import MAX_PRIMER_NOTES, PrimerLoader, primer_from_file, primer_tail
from melody_utils.music.midi import MAX_MIDI_BYTES, Notes, notes_to_midi
from melody_utils.music.tokens import seed_vocab


def steady(n=40, every=0.5, duration=0.4):
    """n notes, one every ``every`` s, pitches 40, 41, ...: the piece ends at (n - 1) * every + duration."""
    return Notes(40 + np.arange(n), np.arange(n) * every, np.full(n, duration), np.full(n, 80))


def test_primer_tail_keeps_the_notes_starting_in_the_last_seconds():
    notes = steady()  # ends at 19.9 s
    np.testing.assert_array_equal(primer_tail(notes, 5.0).pitch, 40 + np.arange(30, 40))  # onsets 15.0 ... 19.5
    np.testing.assert_array_equal(primer_tail(notes, 5.4).pitch, 40 + np.arange(29, 40))  # 14.5 >= 19.9 - 5.4
    assert len(primer_tail(notes)) == 40  # no seconds: the whole piece
    assert len(primer_tail(notes, 1000.0)) == 40


def test_primer_tail_caps_at_the_last_notes():
    notes = steady(3000, every=0.1)
    assert MAX_PRIMER_NOTES < 3000
    np.testing.assert_array_equal(primer_tail(notes).pitch, notes.pitch[-MAX_PRIMER_NOTES:])
    np.testing.assert_array_equal(primer_tail(notes, 50.0, n_notes=7).pitch, notes.pitch[-7:])


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_bad_primer_seconds_are_named(seconds):
    with pytest.raises(ValueError, match="--primer-seconds must be"):
        primer_tail(steady(), seconds)


def test_no_note_in_the_last_seconds_is_one_line_with_the_fix():
    held = Notes([60, 64], [0.0, 1.0], [0.5, 30.0], [80, 80])  # the last note rings for 30 s
    with pytest.raises(ValueError, match=r"song.mid: no note starts in its last 10 s \(its last note starts 30.0 s "
                                         r"before its end\); raise --primer-seconds"):
        primer_tail(held, 10.0, name="song.mid")


def test_primer_from_file_reads_the_files_end(tmp_path):
    path = notes_to_midi(steady(), tmp_path / "piece.mid")
    vocab = seed_vocab()
    got = primer_from_file(path, vocab, seconds=2.0, sustain=False)
    np.testing.assert_array_equal(got.pitch, 40 + np.arange(36, 40))
    assert got.start[0] == pytest.approx(18.0)  # the file's own times: the vocabulary's step makes it the start
    np.testing.assert_array_equal(PrimerLoader(vocab, n_notes=3)("piece.mid", path.read_bytes()).pitch, [77, 78, 79])
    np.testing.assert_array_equal(PrimerLoader(vocab, seconds=1.0)("piece.mid", path.read_bytes()).pitch, [78, 79])
    with pytest.raises(ValueError, match="--primer-seconds"):
        PrimerLoader(vocab, seconds=0)


def test_an_upload_larger_than_a_midi_file_may_be_is_refused(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the upload was written to a temp file")

    monkeypatch.setattr(primer.tempfile, "mkstemp", never)
    data = b"MThd" + bytes(MAX_MIDI_BYTES)
    with pytest.raises(ValueError, match=rf"big.mid is 34 MB, more than the {MAX_MIDI_BYTES >> 20} MB a MIDI file may have"):
        primer.primer_from_bytes("big.mid", data, seed_vocab(), 8)
