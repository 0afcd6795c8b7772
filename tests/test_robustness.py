"""Bad and odd input: a folder of broken, odd-but-valid and good MIDI files through corpus.prepare,
then bad checkpoints, sampling values, primers and output folders. MIDI files are written on
the fly (a tiny Standard MIDI File writer below); no binary fixtures."""

import re
import struct

import numpy as np
import pytest
import torch

from melody_utils.generate import sample
from melody_utils.generate.settings import SamplingSettings
from melody_utils.train import loop as T
from melody_utils.model import checkpoint as C, lstm as MD
from melody_utils.config import TEMPERATURE, TOP_K, TOP_P, DataConfig, get_config
from melody_utils.data.corpus import TokenCache, prepare
from melody_utils.music.midi import MAX_MIDI_BYTES, MidiError, midi_to_notes, notes_to_midi
from melody_utils.music.tokens import Vocab, seed_vocab
from helpers import random_notes, write_midi_folder

torch.set_num_threads(1)

DIVISION = 480  # ticks per quarter note
SLOWEST_TEMPO_US = 0xFFFFFF  # the largest tempo a MIDI file can hold: 16.78 s per quarter (3.58 bpm)
FAST_TEMPO_US = 60_000  # 1000 bpm: 60 ms per quarter
LONG_NOTES = 200_000


# ---------------------------------------------------------------- a tiny SMF writer


def vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def track(events) -> bytes:
    """events: [(absolute tick, message bytes)] -> one MTrk chunk (end-of-track appended)."""
    body, now = [], 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        body.append(vlq(tick - now) + msg)
        now = tick
    body.append(b"\x00\xff\x2f\x00")
    data = b"".join(body)
    return b"MTrk" + struct.pack(">I", len(data)) + data


def smf(*tracks: bytes, division: int = DIVISION) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), division) + b"".join(tracks)


def tempo(us_per_quarter: int) -> bytes:
    return b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big")


def notes_events(pitches, on_ticks, off_ticks, channel: int = 0, velocity: int = 80):
    ev = []
    for p, a, b in zip(pitches, on_ticks, off_ticks):
        ev.append((int(a), bytes([0x90 | channel, int(p), velocity])))
        ev.append((int(b), bytes([0x80 | channel, int(p), 0])))
    return ev


def scale(n: int = 24, ticks: int = DIVISION):
    """n quarter notes up and down a C major scale."""
    pitches = [60 + [0, 2, 4, 5, 7, 9, 11, 12][i % 8] for i in range(n)]
    on = np.arange(n) * ticks
    return pitches, on, on + ticks // 2


# ---------------------------------------------------------------- the folder


BAD = {  # file -> words its skip reason must contain
    "truncated.mid": "could not read",
    "random_bytes.mid": "could not read",
    "text.midi": "could not read",
    "empty.mid": "empty",
    "drums_only.mid": "no non-drum notes",
    "zero_length_only.mid": "only zero-length notes",
    "one_note.mid": "fewer than 2 notes",
    "no_tracks.mid": "no non-drum notes",
}
ODD_BUT_VALID = ("overlapping.mid", "tempo_3.58bpm.mid", "tempo_1000bpm.mid", "long_200k.mid",
                 "some_zero_length.mid", "out_of_range.MID")


def write_bad_and_odd(folder):
    rng = np.random.default_rng(0)
    good = write_midi_folder(folder, n_good=4)
    files = {
        "truncated.mid": good[0].read_bytes()[: len(good[0].read_bytes()) // 2],
        "random_bytes.mid": rng.bytes(700),
        "text.midi": b"this is not a MIDI file\n",
        "empty.mid": b"",
        "drums_only.mid": smf(track(notes_events(*scale(), channel=9))),
        "zero_length_only.mid": smf(track(notes_events([60, 64, 67], [0, 480, 960], [0, 480, 960]))),
        "one_note.mid": smf(track(notes_events([60], [0], [480]))),
        "no_tracks.mid": b"MThd" + struct.pack(">IHHH", 6, 1, 0, DIVISION),
        # Same pitch struck again before its note-off, inside a held chord.
        "overlapping.mid": smf(track(notes_events([60, 64, 67, 60, 60, 64], [0, 0, 0, 240, 480, 960],
                                                  [1920, 1920, 1920, 720, 1200, 1000]))),
        "tempo_3.58bpm.mid": smf(track([(0, tempo(SLOWEST_TEMPO_US))] + notes_events(*scale()))),
        "tempo_1000bpm.mid": smf(track([(0, tempo(FAST_TEMPO_US))] + notes_events(*scale()))),
        "some_zero_length.mid": smf(track(notes_events([60, 62, 64, 65], [0, 480, 960, 1440], [240, 480, 1200, 1680]))),
        # Pitches 10 and 120 lie outside the piano's 21..108: dropped and counted, the rest kept.
        "out_of_range.MID": smf(track(notes_events([10, 60, 62, 120, 64], [0, 480, 960, 1440, 1920], [240, 720, 1200, 1680, 2160]))),
    }
    # 200k notes, 40 ticks apart (2.6 h at 120 bpm, 8M ticks: under pretty_midi's 1e7-tick limit, see below).
    on = np.arange(LONG_NOTES) * 40
    files["long_200k.mid"] = smf(track(notes_events(40 + np.arange(LONG_NOTES) % 48, on, on + 30)))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return good


@pytest.fixture(scope="module")
def folder_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    folder = root / "midi"
    good = write_bad_and_odd(folder)
    cache = prepare(DataConfig(source=str(folder)), cache_dir=root / "cache", progress=False, workers=1)
    return folder, good, cache


def test_every_bad_file_is_skipped_named_and_counted_with_its_reason(folder_cache):
    folder, good, cache = folder_cache
    report = cache.report
    assert report.files == len(good) + len(BAD) + len(ODD_BUT_VALID)
    skipped = {p.split("/")[-1]: reason for p, reason in report.skipped}
    assert set(skipped) == set(BAD)
    for name, words in BAD.items():
        assert words in skipped[name], (name, skipped[name])
    summary = report.summary()
    assert f"skipped {len(BAD)} file(s)" in summary
    assert all(str(folder / name) in summary for name in BAD)  # the full path, so the user can find it


def test_every_good_and_odd_but_valid_file_is_kept(folder_cache):
    _, good, cache = folder_cache
    kept = {p["name"] for p in cache.pieces}
    assert kept == {g.stem for g in good} | {n.rsplit(".", 1)[0] for n in ODD_BUT_VALID}
    assert cache.report.pieces == len(kept) and cache.report.notes == len(cache.tokens)
    long = cache.piece_tokens(cache.find("long_200k"))
    assert len(long) == LONG_NOTES  # nothing capped or lost
    assert cache.report.dropped_out_of_range == 2  # pitches 10 and 120
    assert len(cache.piece_tokens(cache.find("out_of_range"))) == 3
    assert len(cache.piece_tokens(cache.find("some_zero_length"))) == 3  # the one zero-length note dropped
    reloaded = prepare(DataConfig(source=str(cache.path.parent.parent / "midi")), cache_dir=cache.path.parent, progress=False)
    assert reloaded.report.skipped == cache.report.skipped  # the report survives the cache reload


@pytest.mark.parametrize("backend", ["symusic", "pretty_midi"])
def test_same_pitch_overlaps_are_cut_at_the_restrike(folder_cache, backend):
    folder, _, _ = folder_cache
    n = midi_to_notes(folder / "overlapping.mid", backend=backend)
    assert len(n) == 6 and (n.duration > 0).all()
    for p in np.unique(n.pitch):
        s, e = n.start[n.pitch == p], n.end[n.pitch == p]
        assert (e[:-1] <= s[1:] + 1e-9).all()  # one string per pitch: no same-pitch overlap
    c = n.pitch == 60
    np.testing.assert_allclose(n.start[c], [0, 0.25, 0.5], atol=1e-6)
    np.testing.assert_allclose(n.end[c][:2], [0.25, 0.5], atol=1e-6)  # cut at the next strike of C4
    # The chord's E4 and G4 keep their full length; the re-struck E4 cuts the held one at 1.0 s.
    e4 = n.pitch == 64
    np.testing.assert_allclose(n.end[e4][0], 1.0, atol=1e-6)


@pytest.mark.parametrize("backend", ["symusic", "pretty_midi"])
def test_extreme_tempos_give_seconds_at_that_tempo(folder_cache, backend):
    folder, _, cache = folder_cache
    slow = midi_to_notes(folder / "tempo_3.58bpm.mid", backend=backend)
    fast = midi_to_notes(folder / "tempo_1000bpm.mid", backend=backend)
    np.testing.assert_allclose(np.diff(slow.start), SLOWEST_TEMPO_US / 1e6, rtol=1e-5)  # 16.8 s per quarter
    np.testing.assert_allclose(np.diff(fast.start), FAST_TEMPO_US / 1e6, rtol=1e-5)  # 60 ms per quarter
    # In the cache: steps beyond the largest bin clip to it (the slow piece is all longest steps).
    top = len(cache.vocab.step_bins) - 1
    slow_steps = cache.piece_tokens(cache.find("tempo_3.58bpm"))[1:, 1]
    assert (slow_steps == top).all()
    fast_steps = cache.piece_tokens(cache.find("tempo_1000bpm"))[1:, 1]
    assert 0 < fast_steps.min() and fast_steps.max() < top


def test_backends_differ_only_past_pretty_midi_tick_limit(tmp_path):
    """pretty_midi refuses files longer than 1e7 ticks ("likely corrupt"), symusic reads them."""
    path = tmp_path / "far.mid"
    path.write_bytes(smf(track(notes_events([60, 62], [0, 20_000_000], [480, 20_000_480]))))
    with pytest.raises(MidiError, match="far.mid.*largest tick"):
        midi_to_notes(path, backend="pretty_midi")
    n = midi_to_notes(path, backend="symusic")
    assert len(n) == 2 and n.start[1] == pytest.approx(20_000_000 / DIVISION * 0.5)


def test_prepare_on_a_folder_with_only_bad_files_names_them(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    (folder / "empty.mid").write_bytes(b"")
    (folder / "junk.mid").write_bytes(b"MThd\x00\x00")
    with pytest.raises(ValueError) as err:
        prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "cache", progress=False, workers=1)
    assert "no usable pieces" in str(err.value) and "empty.mid" in str(err.value) and "junk.mid" in str(err.value)
    (tmp_path / "no_midi").mkdir()
    with pytest.raises(FileNotFoundError, match="no MIDI files .* found in .*no_midi"):
        prepare(DataConfig(source=str(tmp_path / "no_midi")), cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(FileNotFoundError, match="MIDI folder not found: .*typo.*check the path"):
        prepare(DataConfig(source=str(tmp_path / "typo")), cache_dir=tmp_path / "cache", progress=False)


def test_a_huge_file_in_a_folder_is_skipped_unread(tmp_path):
    folder = tmp_path / "midi"
    write_midi_folder(folder, n_good=3)
    with open(folder / "huge.mid", "wb") as f:  # sparse: takes no disk space
        f.write(b"MThd")
        f.truncate(MAX_MIDI_BYTES + 1)
    cache = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "cache", progress=False, workers=1)
    [(path, reason)] = cache.report.skipped
    assert len(cache) == 3 and path.endswith("huge.mid") and f"is 34 MB, more than the {MAX_MIDI_BYTES >> 20} MB" in reason


# ---------------------------------------------------------------- other bad input


def tiny_cfg(**overrides):
    base = {"model.hidden": 16, "model.emb_pitch": 8, "model.emb_step": 4, "model.emb_dur": 4,
            "data.window": 16, "data.stride": 16, "data.bins": "seed", "train.batch_size": 8,
            "train.epochs": 1, "train.max_steps": 2, "train.warmup_steps": 1, "train.device": "cpu"}
    base.update(overrides)
    return get_config("tiny", **base)


@pytest.fixture(scope="module")
def small_cache():
    vocab = seed_vocab()
    rng = np.random.default_rng(1)
    pieces = [np.stack([rng.integers(0, s, 60) for s in vocab.sizes], 1) for _ in range(4)]
    return TokenCache.from_pieces(pieces, vocab, splits=["train", "train", "train", "validation"])


def test_checkpoint_of_another_model_names_the_file(small_cache, tmp_path):
    model = MD.build_from_config(tiny_cfg(), small_cache.vocab)
    path = C.save_checkpoint(tmp_path / "ck.pt", model, tiny_cfg(**{"model.hidden": 24}), small_cache.vocab)
    with pytest.raises(ValueError, match=r"ck\.pt does not fit the model its config describes.*train again"):
        C.load_checkpoint(path)
    path = C.save_checkpoint(tmp_path / "arch.pt", model, tiny_cfg(**{"model.arch": "baseline"}), small_cache.vocab)
    with pytest.raises(ValueError, match=r"arch\.pt holds a CausalLSTM.*builds a MusicLSTM"):
        C.load_checkpoint(path)


def test_resume_with_other_bins_names_the_setting_and_the_fix(small_cache, tmp_path):
    T.train(tiny_cfg(), small_cache, tmp_path, progress=False)
    velocity = Vocab(small_cache.vocab.step_bins, small_cache.vocab.dur_bins, velocity_bins=4, name="seed")
    other = TokenCache.from_pieces([np.c_[small_cache.piece_tokens(i), np.zeros(60, np.int16)] for i in range(4)],
                                   velocity, splits=["train", "train", "train", "validation"])
    with pytest.raises(ValueError) as err:
        T.train(tiny_cfg(**{"data.velocity_bins": 4}), other, tmp_path, progress=False)
    msg = str(err.value)
    assert str(tmp_path / C.CHECKPOINT_LAST) in msg and "data.velocity_bins" in msg and "velocity bins 0 vs 4" in msg
    assert "--no-resume" in msg


def test_sampling_with_a_vocab_of_other_bins_is_refused(small_cache):
    model = MD.build_from_config(tiny_cfg(), small_cache.vocab)
    velocity = Vocab(small_cache.vocab.step_bins, small_cache.vocab.dur_bins, velocity_bins=4)
    with pytest.raises(ValueError, match="use the vocab saved with the model's checkpoint"):
        sample.generate(model, velocity, 4)


@pytest.mark.parametrize("knobs, name", [
    ((0.0, 0, 0.9), "temperature"), ((-1.0, 0, 0.9), "temperature"), ((float("nan"), 0, 0.9), "temperature"),
    (("hot", 0, 0.9), "temperature"), ((1.0, -1, 0.9), "top_k"), ((1.0, 2.5, 0.9), "top_k"),
    ((1.0, 0, 0.0), "top_p"), ((1.0, 0, 1.5), "top_p"), ((1.0, 0, float("nan")), "top_p"),
])
def test_sampling_values_out_of_range_name_the_parameter_and_its_range(knobs, name, small_cache):
    limit = {"temperature": TEMPERATURE, "top_k": TOP_K, "top_p": TOP_P}[name]
    value = knobs[("temperature", "top_k", "top_p").index(name)]
    says = f"^{re.escape(f'{name} must be {limit.describe()}, got {value!r}')}$"  # the parameter, its range, the value
    with pytest.raises(ValueError, match=says):
        SamplingSettings(temperature=knobs[0], top_k=knobs[1], top_p=knobs[2])
    with pytest.raises(ValueError, match=says):
        limit.check(name, value)
    model = MD.build_from_config(tiny_cfg(), small_cache.vocab)
    with pytest.raises(ValueError, match=says):
        sample.generate(model, small_cache.vocab, 4, temperature=knobs[0], top_k=knobs[1], top_p=knobs[2])
    generate_fn = sample.model_generate_fn(model, small_cache.vocab)
    with pytest.raises(ValueError, match=says):
        generate_fn(temperature=knobs[0], top_k=knobs[1], top_p=knobs[2])


def test_primer_without_usable_notes_is_refused_clearly(small_cache, tmp_path):
    model = MD.build_from_config(tiny_cfg(), small_cache.vocab)
    with pytest.raises(ValueError, match="primer must be a non-empty"):
        sample.generate(model, small_cache.vocab, 4, primer=random_notes(10)[:0])
    drums = tmp_path / "drums.mid"
    drums.write_bytes(smf(track(notes_events(*scale(), channel=9))))
    with pytest.raises(MidiError, match="drums.mid has no non-drum notes"):
        midi_to_notes(drums)


def test_unwritable_output_folders_fail_early_and_name_the_folder(small_cache, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a path below a regular file cannot be created, even as root
    with pytest.raises(PermissionError, match=f"cannot write to folder {blocker}"):
        notes_to_midi(random_notes(8), blocker / "out.mid")
    with pytest.raises(PermissionError, match=f"cannot write to folder {blocker}"):
        C.save_checkpoint(blocker / "ck.pt", MD.build_from_config(tiny_cfg(), small_cache.vocab), tiny_cfg(), small_cache.vocab)
    calls = []
    real_loss = T.distributed.training_loss
    try:
        T.distributed.training_loss = lambda m, b: calls.append(1) or real_loss(m, b)
        with pytest.raises(PermissionError, match=f"cannot write checkpoints to {blocker / 'run'}.*train.out_dir"):
            T.train(tiny_cfg(), small_cache, blocker / "run", progress=False)
    finally:
        T.distributed.training_loss = real_loss
    assert calls == []  # refused before the first training step, not after an epoch
