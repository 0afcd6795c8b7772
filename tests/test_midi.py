import mido
import numpy as np
import pytest

from melody_utils.music import midi
from melody_utils.music.midi import MidiError, Notes, apply_sustain, midi_to_notes, notes_to_midi, resolve_same_pitch_overlaps
from helpers import random_notes

BACKENDS = ["pretty_midi", "symusic"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_keeps_every_note(tmp_path, backend):
    notes = random_notes(80, seed=1)
    notes = resolve_same_pitch_overlaps(notes).sorted()
    back = midi_to_notes(notes_to_midi(notes, tmp_path / "x.mid"), sustain=False, backend=backend)
    assert len(back) == len(notes)
    np.testing.assert_array_equal(back.pitch, notes.pitch)
    np.testing.assert_array_equal(back.velocity, notes.velocity)
    np.testing.assert_allclose(back.start, notes.start, atol=2e-3)  # tick resolution
    np.testing.assert_allclose(back.duration, notes.duration, atol=2e-3)


def test_step_is_time_since_previous_onset_and_zero_first():
    n = Notes.from_steps([60, 64, 67], [0.5, 0.0, 0.25], [1, 1, 1])
    np.testing.assert_allclose(n.step, [0.0, 0.0, 0.25])
    np.testing.assert_allclose(n.start, [0.5, 0.5, 0.75])


def _write_raw(path, events, tpq=480):
    """events: list of (delta_ticks, mido message kwargs) on one track at 120 bpm."""
    mid = mido.MidiFile(ticks_per_beat=tpq)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    for delta, kw in events:
        tr.append(mido.Message(time=delta, **kw))
    mid.save(path)
    return path


def test_tracks_merged_and_sorted_by_onset_then_pitch(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    a, b, drums = pretty_midi.Instrument(0), pretty_midi.Instrument(0), pretty_midi.Instrument(0, is_drum=True)
    a.notes += [pretty_midi.Note(velocity=90, pitch=72, start=1.0, end=1.5), pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.5)]
    b.notes += [pretty_midi.Note(velocity=70, pitch=48, start=1.0, end=2.0)]
    drums.notes += [pretty_midi.Note(velocity=70, pitch=36, start=0.5, end=0.6)]
    pm.instruments += [a, b, drums]
    pm.write(str(tmp_path / "m.mid"))
    for backend in BACKENDS:
        n = midi_to_notes(tmp_path / "m.mid", backend=backend)
        assert list(n.pitch) == [60, 48, 72]  # drums left out, chord ordered by pitch
        np.testing.assert_allclose(n.step, [0.0, 1.0, 0.0], atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sustain_pedal_extends_durations_until_release(tmp_path, backend):
    # 120 bpm, 480 tpq -> 960 ticks per second.
    events = [
        (0, dict(type="control_change", control=64, value=127)),
        (0, dict(type="note_on", note=60, velocity=80)),
        (480, dict(type="note_off", note=60, velocity=0)),  # released at 0.5 s, pedal still down
        (0, dict(type="note_on", note=64, velocity=80)),
        (480, dict(type="note_on", note=60, velocity=80)),  # re-strike 60 at 1.0 s
        (240, dict(type="note_off", note=60, velocity=0)),
        (720, dict(type="control_change", control=64, value=0)),  # pedal up at 2.0 s
        (0, dict(type="note_off", note=64, velocity=0)),
    ]
    path = _write_raw(tmp_path / "pedal.mid", events)
    dry = midi_to_notes(path, sustain=False, backend=backend)
    wet = midi_to_notes(path, sustain=True, backend=backend)
    assert len(dry) == len(wet) == 3
    d = {(int(p), round(float(s), 3)): float(x) for p, s, x in zip(wet.pitch, wet.start, wet.duration)}
    assert d[(60, 0.0)] == pytest.approx(1.0, abs=2e-3)  # cut by the re-strike at 1.0 s
    assert d[(60, 1.0)] == pytest.approx(1.0, abs=2e-3)  # held by the pedal until 2.0 s
    assert d[(64, 0.5)] == pytest.approx(1.5, abs=2e-3)
    assert sorted(dry.duration.round(3)) == [0.25, 0.5, 1.5]


def test_apply_sustain_leaves_notes_released_after_pedal_up():
    n = Notes([60], [0.0], [3.0], [80])
    out = apply_sustain(n, np.array([0.5]), np.array([1.0]))
    assert out.duration[0] == 3.0


def test_readers_differ_only_where_documented_on_restruck_notes(tmp_path):
    on = lambda d, n=60: (d, dict(type="note_on", note=n, velocity=80))  # noqa: E731
    off = lambda d, n=60: (d, dict(type="note_off", note=n, velocity=0))  # noqa: E731
    # 60 struck at 0 s, struck again at 0.5 s while open, note-offs at 1.0 s and 1.5 s.
    path = _write_raw(tmp_path / "overlap.mid", [on(0), on(480), off(480), off(480)])
    a = midi_to_notes(path, sustain=False, backend="pretty_midi")
    b = midi_to_notes(path, sustain=False, backend="symusic")
    np.testing.assert_allclose(a.start, [0.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(b.start, a.start, atol=1e-3)
    np.testing.assert_allclose([a.duration[0], b.duration[0]], [0.5, 0.5], atol=1e-3)  # the re-strike cuts both
    assert a.duration[1] == pytest.approx(0.5, abs=1e-3)  # pretty_midi: ended by the first note-off
    assert b.duration[1] == pytest.approx(1.0, abs=1e-3)  # symusic: ended by its own note-off
    # A dangling note-on (no note-off of its own): pretty_midi keeps it, symusic drops it.
    path = _write_raw(tmp_path / "dangling.mid", [on(0), on(480), off(480)])
    assert len(midi_to_notes(path, sustain=False, backend="pretty_midi")) == 2
    assert len(midi_to_notes(path, sustain=False, backend="symusic")) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_length_notes_are_dropped(tmp_path, backend):
    on = lambda d, n: (d, dict(type="note_on", note=n, velocity=80))  # noqa: E731
    off = lambda d, n: (d, dict(type="note_off", note=n, velocity=0))  # noqa: E731
    path = _write_raw(tmp_path / "zero.mid", [on(0, 60), off(0, 60), on(480, 62), off(480, 62)])
    assert list(midi_to_notes(path, backend=backend).pitch) == [62]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_raise_midierror_naming_the_file(tmp_path, backend):
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    for path in (empty, junk, tmp_path / "missing.mid"):
        with pytest.raises(MidiError, match=path.name):
            midi_to_notes(path, backend=backend)


def test_notes_to_midi_rejects_bad_pitch(tmp_path):
    with pytest.raises(ValueError, match="pitches"):
        notes_to_midi(Notes([200], [0.0], [1.0], [80]), tmp_path / "x.mid")


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="file"):
        notes_to_midi(random_notes(5), blocker / "out.mid")


def test_a_huge_file_or_one_without_a_midi_header_is_refused_before_it_is_read(tmp_path, monkeypatch):
    def never(path, sustain):
        raise AssertionError("the reader was called")

    monkeypatch.setattr(midi, "_read_symusic", never)
    monkeypatch.setattr(midi, "_read_pretty_midi", never)
    huge = tmp_path / "huge.mid"
    with open(huge, "wb") as f:  # sparse: takes no disk space
        f.write(b"MThd")
        f.truncate(midi.MAX_MIDI_BYTES + 1)
    with pytest.raises(MidiError, match=rf"huge.mid is 34 MB, more than the {midi.MAX_MIDI_BYTES >> 20} MB"):
        midi_to_notes(huge)
    text = tmp_path / "notes.mid"
    text.write_text("my notes, not music")
    with pytest.raises(MidiError, match=r"could not read .*notes.mid as MIDI \(it begins with b'my n'"):
        midi_to_notes(text)
