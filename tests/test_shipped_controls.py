"""Every sampling-time control takes effect on the shipped model (data/pretrained/piano_lstm.pt), the
model users get by default: a hard key keeps >= 95% of notes in the scale, a pitch range is never left,
a density target is met within 20%, --seconds 60 gives 60 +- 6 s of music with a WAV that is not
silent, the composer moves what the model plays, originality finds a passage planted from the
training corpus, and an uploaded MIDI primer stays out of the output unless asked for.

Short pieces on the numpy stepper, a few seconds in all. The tiny-model versions of these tests
(test_controls.py, test_composers.py, test_originality.py) check the mechanics; these check the
promise on the real model.
"""

import io
import wave

import numpy as np
import pytest

from melody_utils.cli import commands as cli
from melody_utils.data import corpus
from melody_utils.model.checkpoint import load_checkpoint
from melody_utils.data.composers import composer_id
from melody_utils.config import REPO_ROOT, SampleConfig
from melody_utils.generate.controls import Controls
from melody_utils.music.midi import midi_to_notes
from melody_utils.evaluate.originality import OriginalityIndex
from melody_utils.generate.sample import generate, model_generate_fn
from melody_utils.model.stepper import NumpyStepper
from melody_utils.music.scales import parse_key
from melody_utils.generate.primer import primer_from_bytes

SHIPPED = REPO_ROOT / "data" / "pretrained" / "piano_lstm.pt"
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"{SHIPPED} is not in this checkout")
PIECES, NOTES = 4, 64  # per setting


@pytest.fixture(scope="module")
def shipped():
    model, vocab, cfg, _ = load_checkpoint(SHIPPED)
    return model, vocab, cfg


@pytest.fixture(scope="module")
def cache(shipped, tmp_path_factory):
    """The shipped model's training corpus in its vocabulary (the embedded piano corpus, under a second)."""
    return corpus.prepare(shipped[2].data, vocab=shipped[1], cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def plain(shipped):
    """The pieces every control is compared with: no control."""
    return _generate(shipped)


def _generate(shipped, controls=None):
    """With the piece memory at its default strength, as `generate` and notebook 04 sample."""
    model, vocab, _ = shipped
    return generate(model, vocab, NOTES, None, batch=PIECES, seed=0, controls=controls,
                    memory=SampleConfig().memory)  # (PIECES, NOTES, F)


def _pitches(shipped, tokens):
    return tokens[..., 0] + shipped[1].min_pitch


def _density(shipped, tokens):
    return NOTES / np.asarray(shipped[1].step_bins.centers)[tokens[..., 1]].sum(axis=1)  # (PIECES,) notes per second


def _in_key(p, key):
    return np.isin(p % 12, parse_key(key)).mean()


def _inside(p, lo, hi):
    return ((p >= lo) & (p <= hi)).mean()


@pytest.mark.parametrize("name, controls, measure, goal", [
    ("hard key D minor", Controls(key="D minor"), lambda p: _in_key(p, "D minor"), 0.95),
    ("hard key F# major", Controls(key="F# major"), lambda p: _in_key(p, "F# major"), 0.95),
    ("range C3-C5", Controls(pitch_range="C3-C5"), lambda p: _inside(p, 48, 72), 1.0),
    ("range A4-A5", Controls(pitch_range="A4-A5"), lambda p: _inside(p, 69, 81), 1.0),
])
def test_key_and_range_hold_on_the_shipped_model(shipped, plain, name, controls, measure, goal):
    off, on = measure(_pitches(shipped, plain)), measure(_pitches(shipped, _generate(shipped, controls)))
    assert on >= goal, f"{name}: {on:.1%} of notes comply, want >= {goal:.0%}"
    assert off < goal, f"{name}: the model alone already complies ({off:.1%}): the test shows nothing"


@pytest.mark.parametrize("target", [3.0, 16.0])
def test_density_target_is_met_within_20_percent_on_the_shipped_model(shipped, plain, target):
    own = _density(shipped, plain).mean()
    realised = _density(shipped, _generate(shipped, Controls(density=target)))
    assert np.all(np.abs(realised / target - 1) <= 0.2), f"target {target}/s, realised {np.round(realised, 2)}"
    assert abs(own / target - 1) > 0.2  # the model's own density is elsewhere: the control moved it


def test_seconds_60_and_wav_from_the_command_line(shipped, cache, tmp_path, capsys):
    midi, wav = tmp_path / "long.mid", tmp_path / "long.wav"
    code = cli.main(["generate", "--checkpoint", str(SHIPPED), "--primer", "none", "--seconds", "60", "--wav", str(wav),
                     "--output", str(midi), "--cache-dir", str(cache.path.parent), "--quiet", "--out-dir", str(tmp_path)])
    assert code == 0
    assert 54 <= midi_to_notes(midi).seconds() <= 66
    with wave.open(io.BytesIO(wav.read_bytes())) as w:
        assert 54 <= w.getnframes() / w.getframerate() <= 70  # the notes' 60 s plus the last release
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
    assert np.sqrt(np.mean(samples ** 2)) / 32768 > 10 ** (-50 / 20)  # louder than -50 dBFS: not silent
    assert "originality:" in capsys.readouterr().out


def test_the_composer_changes_what_the_shipped_model_plays(shipped):
    model, vocab, _ = shipped
    # the distribution the sampler draws from: next-pitch probabilities along one piece, per composer
    # (measured: 0.09 of the probability moves per note between these two; 0 if the composer did nothing)
    notes = generate(model, vocab, 64, None, seed=0)[0].astype(np.int64)

    def pitch_probs(composer):
        stepper = NumpyStepper(model, composer_id(model, composer))
        state, probs = stepper.zero_state(1), []
        for note in notes:
            h, state = stepper.step(note[None], state)
            z = stepper.pitch_logits(h)[0].astype(np.float64)
            probs.append(np.exp(z - z.max()) / np.exp(z - z.max()).sum())
        return np.array(probs)

    a, b = pitch_probs("Albeniz"), pitch_probs("Beethoven")
    total_variation = 0.5 * np.abs(a - b).sum(axis=1).mean()
    assert total_variation > 0.05, f"Albeniz and Beethoven differ by only {total_variation:.3f} per note"
    # and the pieces generated: Albeniz higher on the keyboard than Beethoven (70 vs 59 over 8 x 64 notes)
    high = generate(model, vocab, 64, None, batch=8, seed=0, composer="Albeniz")[..., 0].mean()
    low = generate(model, vocab, 64, None, batch=8, seed=0, composer="Beethoven")[..., 0].mean()
    assert high - low > 3, f"mean pitch id Albeniz {high:.1f}, Beethoven {low:.1f}"


@pytest.mark.parametrize("shift", [0, 5])
def test_originality_finds_a_planted_training_passage(shipped, cache, shift):
    model, vocab, _ = shipped
    index = OriginalityIndex.for_cache(cache)
    piece = generate(model, vocab, 120, None, seed=1)[0].astype(np.int64)
    clean = index.check(piece)
    assert clean["longest_copy"] < 16, clean
    source_piece = int(cache.piece_indices("train")[3])
    passage = cache.piece_tokens(source_piece)[40:72].astype(np.int64)  # 32 training notes
    passage[:, 0] = np.clip(passage[:, 0] + shift, 0, vocab.n_pitch - 1)
    piece[50:82] = passage
    found = index.check(piece)
    assert found["longest_copy"] >= 32 and found["source"] == cache.pieces[source_piece]["name"]
    assert found["transposition"] == shift and found["copied_share"] > clean["copied_share"]


def test_an_uploaded_midi_primes_the_shipped_model_and_stays_out_unless_kept(shipped, tmp_path):
    import pretty_midi

    model, vocab, cfg = shipped
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=70, pitch=p, start=0.5 * i, end=0.5 * i + 0.4)
                   for i, p in enumerate([62, 65, 69, 74, 69, 65, 62, 57])]
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "mine.mid"))
    primer = primer_from_bytes("mine.mid", (tmp_path / "mine.mid").read_bytes(), vocab, 8, cfg.data.sustain)
    generate_fn = model_generate_fn(model, vocab)
    knobs = dict(temperature=1.0, top_k=0, top_p=0.95, n_notes=24, seed=0, primer=primer)
    new = generate_fn(**knobs)
    kept = generate_fn(**knobs, keep_primer=True)
    assert len(new) == 24 and len(kept) == 24 + 8
    np.testing.assert_array_equal(kept.pitch[:8], primer.pitch)  # asked for: the primer first
    np.testing.assert_array_equal(kept.pitch[8:], new.pitch)  # otherwise only the new notes
