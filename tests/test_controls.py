"""Sampling-time controls (melody_utils.generate.controls): their settings, the logit processors on fixed
logits, and their effect on a small trained model (tiny preset, a few dozen steps) through every generation path and the CLI."""

import wave

import numpy as np
import pretty_midi
import pytest
import torch

from benchmarks import bench_controls
from melody_utils.cli import commands as cli
from melody_utils.data import corpus
from melody_utils.config import get_config
from melody_utils.generate.controls import CONTROLS, Controls, loop_continuations, trim_to_seconds
from melody_utils.generate.logits import NoteContext
from melody_utils.generate.pipeline import SamplingPipeline
from melody_utils.generate.settings import SamplingSettings
from melody_utils.music.stats import degeneracy, loop_mask
from melody_utils.generate.logits import sample_logits
from melody_utils.generate.sample import generate, generate_notes
from melody_utils.music.tokens import seed_vocab
from melody_utils.model.checkpoint import CHECKPOINT_LAST, load_checkpoint
from melody_utils.train.loop import train

from helpers import D_MINOR

torch.set_num_threads(1)


# ---- settings ----


@pytest.mark.parametrize("kwargs,name", [(dict(density=0), "density"), (dict(density=-3.0), "density"),
                                         (dict(density=float("nan")), "density"), (dict(temperature_pitch=0), "temperature_pitch"),
                                         (dict(key_strength=-1), "key_strength"), (dict(repeat_guard=-0.5), "repeat_guard"),
                                         (dict(key="C major", pitch_range="C#4-C#4"), "no pitch in the pitch range")])
def test_controls_validate(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Controls(**kwargs)


# ---- the processors on fixed logits ----
VOCAB = seed_vocab(velocity_bins=8)  # sizes (88, 21, 29, 8)
MIDI = np.arange(VOCAB.min_pitch, VOCAB.max_pitch + 1)


def pipeline(controls=None, rows: int = 2, temperature: float = 1.0) -> SamplingPipeline:
    return SamplingPipeline(SamplingSettings(temperature=temperature, controls=controls), VOCAB, rows, 1)


def processed(controls, field, z, hist, pitch=None, temperature: float = 1.0) -> np.ndarray:
    """The logits of ``field`` after the temperature and the controls (no grammar mask: no previous pitch)."""
    return pipeline(controls, len(z), temperature).logits(field, z, NoteContext(hist, pitch))


def test_inactive_controls_leave_logits_alone():
    z = np.random.default_rng(0).normal(size=(3, 88))
    assert pipeline(None).controls == [] and pipeline(Controls()).controls == []
    assert np.array_equal(processed(None, 0, z, np.zeros((3, 0, 4), int)), z)


def test_each_control_is_one_processor_in_a_fixed_order():
    c = Controls(key="D minor", density=4.0, temperature_timing=2.0, repeat_guard=1.0)
    assert [type(p) for p in pipeline(c).controls] == CONTROLS  # every registered control, in its order
    assert [type(p).__name__ for p in pipeline(Controls(density=4.0)).controls] == ["NoteDensity"]


def test_key_range_and_field_temperatures_on_fixed_logits():
    z = np.random.default_rng(0).normal(size=(2, 88))
    hist = np.zeros((2, 0, 4), int)
    in_key = np.isin(MIDI % 12, D_MINOR)
    hard = processed(Controls(key="D minor"), 0, z, hist)
    assert np.all(np.isneginf(hard[:, ~in_key])) and np.array_equal(hard[:, in_key], z[:, in_key])
    soft = processed(Controls(key="D minor", key_strength=2.0), 0, z, hist, temperature=1.5)
    # 2 nats of the distribution drawn from: after the temperature
    assert np.allclose(soft[:, ~in_key], z[:, ~in_key] / 1.5 - 2.0) and np.allclose(soft[:, in_key], z[:, in_key] / 1.5)
    rng_ = processed(Controls(pitch_range="C3-C5"), 0, z, hist)
    inside = (MIDI >= 48) & (MIDI <= 72)
    assert np.all(np.isneginf(rng_[:, ~inside])) and np.array_equal(rng_[:, inside], z[:, inside])
    temps = Controls(temperature_pitch=0.5, temperature_timing=2.0, temperature_velocity=4.0)
    for field, t in enumerate((0.5, 2.0, 2.0, 4.0)):
        zf = np.random.default_rng(field).normal(size=(2, VOCAB.sizes[field]))
        assert np.allclose(processed(temps, field, zf, hist, np.zeros(2, int), temperature=0.8), zf / 0.8 / t)


def test_loop_continuations_agree_with_the_loop_detector():
    """For every prefix and every possible next element, the guard's verdict is loop_mask's."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        alphabet = int(rng.integers(2, 5))
        seq = rng.integers(0, alphabet, int(rng.integers(1, 60)))
        if trial % 3 == 0:  # plant a loop
            seq = np.concatenate([seq, np.tile(rng.integers(0, alphabet, int(rng.integers(1, 6))), 6)])
        T = len(seq)
        cont = loop_continuations(seq[None])[0]  # (P,)
        for v in range(alphabet):
            expected = loop_mask(np.append(seq, v))[-1]
            got = any(cont[p - 1] > 0 and seq[T - p] == v for p in range(1, min(T, len(cont)) + 1))
            assert got == expected, (seq.tolist(), v)


def test_guard_lowers_exactly_the_ids_that_continue_a_loop():
    motif = np.array([[40, 3, 5, 1], [43, 4, 5, 1], [47, 3, 6, 1], [45, 2, 5, 1]])
    hist = np.stack([np.tile(motif, (3, 1)), np.tile(motif[::-1], (3, 1))])  # (2, 12, 4), both rows loop
    s = pipeline(Controls(repeat_guard=2.5))

    def adjust(field, z, history, pitch=None):
        return s.logits(field, z, NoteContext(history, pitch))

    z = np.zeros((2, 88))
    out = adjust(0, z, hist)
    # row 0 continues with pitch 40 a 13-note loop, all 12 notes so far in loops: 2.5 * (13 / 8)^2 * (1 + 4 * 1) nats
    assert np.flatnonzero(out[0]).tolist() == [40] and np.isclose(out[0, 40], -2.5 * (13 / 8) ** 2 * 5)
    assert np.flatnonzero(out[1]).tolist() == [45]
    step = adjust(1, np.zeros((2, 21)), hist, pitch=np.array([40, 44]))  # row 1 left the loop's pitch
    assert np.flatnonzero(step[0]).tolist() == [3] and not step[1].any()
    assert adjust(3, np.zeros((2, 8)), hist, pitch=np.array([40, 45])).any() == False  # velocity: not part of a loop
    assert not adjust(0, z, hist[:, :5]).any()  # 5 notes: no loop yet


@pytest.mark.parametrize("target", [1.5, 6.0, 20.0])
def test_density_controller_on_fixed_logits(target):
    """A fixed step distribution (mean ~4 notes/s) steered to the target, rows sampled independently."""
    step_logits = -0.5 * (np.log(np.asarray(VOCAB.step_bins.centers)) + 1.4) ** 2  # peaked near 0.25 s
    s = pipeline(Controls(density=target), rows=8)
    rng = np.random.default_rng(0)
    hist = np.zeros((8, 300, 4), np.int64)
    for i in range(300):
        z = s.logits(1, np.tile(step_logits, (8, 1)), NoteContext(hist[:, :i], np.zeros(8, int)))
        hist[:, i, 1] = sample_logits(z, rng.random(8))
    realised = 300 / np.asarray(VOCAB.step_bins.centers)[hist[:, :, 1]].sum(axis=1)
    assert np.all(np.abs(realised / target - 1) < 0.2), realised


def test_trim_to_seconds_keeps_onsets_before_the_target():
    tokens = np.zeros((40, 3), int)
    tokens[:, 1] = 9  # 0.5 s steps: onsets 0.5, 1.0, ...
    assert len(trim_to_seconds(tokens, VOCAB, 4.0)) == 7  # onsets 0.5 .. 3.5
    assert len(trim_to_seconds(tokens, VOCAB, None)) == 40


# ---- a model that loops, for the repetition guard ----
class EchoModel(torch.nn.Module):
    """A window model that falls into loops, as sampled language models do: each field's logits
    favour the id of the note ``period`` notes back, the more the longer the notes have already
    repeated that way (``pull + gain * run`` nats, the run capped at ``cap``)."""

    causal = False

    def __init__(self, vocab, period=4, pull=5.0, gain=1.0, cap=8, seed=0):
        super().__init__()
        self.window, self.sizes, self.period = 32, tuple(vocab.sizes[:3]), period
        self.pull, self.gain, self.cap = pull, gain, cap
        g = torch.Generator().manual_seed(seed)
        self.bias = torch.nn.ParameterList([torch.nn.Parameter(0.5 * torch.randn(n, generator=g)) for n in self.sizes])

    def forward(self, x):  # (B, W, F) -> [(B, V_f)]
        B, W, p = len(x), x.shape[1], self.period
        same = (x[:, p:, :3] == x[:, :-p, :3]).all(-1) if W > p else torch.zeros(B, 0, dtype=torch.bool)  # (B, W - p)
        run = same.flip(1).int().cumprod(1).sum(1).clamp(max=self.cap)  # (B,) trailing repeats at the period
        out = []
        for f, b in enumerate(self.bias):
            z = b.detach().expand(B, -1).clone()
            if W >= p:
                z[torch.arange(B), x[:, -p, f]] += self.pull + self.gain * run
            out.append(z)
        return out


def degenerate_rate(vocab, tokens) -> float:
    return float(np.mean([degeneracy(vocab.decode(t))["degenerate"] for t in tokens]))


def test_repeat_guard_lowers_the_degenerate_rate_of_a_looping_model():
    vocab = seed_vocab()
    model = EchoModel(vocab)
    rates = {}
    for guard in (0.0, 3.0):
        rates[guard] = [degenerate_rate(vocab, generate(model, vocab, 120, batch=12, seed=1, temperature=t, top_p=1.0,
                                                        controls=Controls(repeat_guard=guard)))
                        for t in (0.7, 1.0, 1.3)]
    assert min(rates[0.0]) >= 0.75, rates  # the model loops at every temperature ... (measured 1.0, 1.0, 0.92)
    assert max(rates[3.0]) <= 0.3, rates  # ... and far less with the guard (0.25, 0, 0)


# ---- a small trained model ----
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    cfg = get_config("tiny", **{"data.source": "embedded", "train.max_steps": 40, "train.epochs": 10, "train.device": "cpu"})
    cache = corpus.prepare(cfg.data, cache_dir=root / "cache", progress=False)
    train(cfg, cache, root / "out", resume=False, progress=False)
    model, vocab, _, _ = load_checkpoint(root / "out" / CHECKPOINT_LAST)
    primer = cache.piece_tokens(cache.held_out_piece())[:16]
    return model, vocab, primer, root


def test_hard_key_and_range_hold_on_the_model_on_every_path(trained):
    model, vocab, primer, _ = trained
    c = Controls(key="D minor", pitch_range="C3-C5", density=6.0, temperature_pitch=0.8, temperature_timing=1.2,
                 repeat_guard=2.0)
    base = generate(model, vocab, 150, primer, batch=4, seed=0)[..., 0] + vocab.min_pitch
    assert np.isin(base % 12, D_MINOR).mean() < 0.9  # without the key the model leaves it
    fast = generate(model, vocab, 150, primer, batch=4, seed=0, controls=c)
    ref = generate(model, vocab, 150, primer, batch=4, seed=0, controls=c, fast=False)
    assert np.array_equal(fast, ref)  # the numpy stepper and the torch path steer alike
    pitch = fast[..., 0] + vocab.min_pitch
    assert np.isin(pitch % 12, D_MINOR).mean() >= 0.95 and pitch.min() >= 48 and pitch.max() <= 72


def test_soft_key_raises_the_in_key_share(trained):
    model, vocab, primer, _ = trained
    share = [np.isin((generate(model, vocab, 150, primer, batch=4, seed=0, controls=c)[..., 0] + vocab.min_pitch) % 12,
                     D_MINOR).mean() for c in (None, Controls(key="D minor", key_strength=2.0))]
    assert share[1] > share[0] + 0.1, share


@pytest.mark.parametrize("target", [3.0, 12.0])
def test_density_target_is_met_by_the_model(trained, target):
    model, vocab, primer, _ = trained
    steps = np.asarray(vocab.step_bins.centers)
    for temperature in (0.8, 1.2):
        g = generate(model, vocab, 200, primer, batch=4, seed=0, temperature=temperature, controls=Controls(density=target))
        realised = 200 / steps[g[..., 1]].sum(axis=1)
        assert np.all(np.abs(realised / target - 1) <= 0.2), (temperature, realised)


def test_window_model_takes_the_controls():
    vocab = seed_vocab()
    g = generate(EchoModel(vocab, pull=2.0), vocab, 60, batch=3, seed=0, controls=Controls(key="C major", pitch_range="C4-C5"))
    pitch = g[..., 0] + vocab.min_pitch
    assert np.isin(pitch % 12, (0, 2, 4, 5, 7, 9, 11)).all() and pitch.min() >= 60 and pitch.max() <= 72


def test_seconds_gives_that_much_music(trained):
    model, vocab, primer, _ = trained
    notes = generate_notes(model, vocab, 10, primer, seed=0, seconds=60)
    assert abs(notes.seconds() - 60) <= 6 and notes.start.max() < 60
    with pytest.raises(ValueError, match="seconds"):
        generate(model, vocab, 10, primer, seconds=0)


# ---- the command line ----
def _cli(trained, tmp_path, *extra):
    _, _, _, root = trained
    midi = tmp_path / "song.mid"
    args = ["generate", "--preset", "tiny", "--cache-dir", str(root / "cache"), "--device", "cpu", "--quiet",
            "--checkpoint", str(root / "out" / CHECKPOINT_LAST), "--output", str(midi), *extra]  # the checkpoint's corpus
    return cli.main(args), midi


def test_cli_seconds_key_wav_and_originality(trained, tmp_path, capsys):
    wav = tmp_path / "song.wav"
    rc, midi = _cli(trained, tmp_path, "--seconds", "60", "--key", "D minor", "--pitch-range", "C2-C6", "--density", "5",
                    "--repeat-guard", "--wav", str(wav))
    assert rc == 0
    pm = pretty_midi.PrettyMIDI(str(midi))
    pitches = np.array([n.pitch for n in pm.instruments[0].notes])
    assert abs(pm.get_end_time() - 60) <= 6 and np.isin(pitches % 12, D_MINOR).all()
    assert pitches.min() >= 36 and pitches.max() <= 84
    with wave.open(str(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert w.getnframes() / w.getframerate() > 55 and np.sqrt(np.mean(pcm.astype(float) ** 2)) > 100
    out = capsys.readouterr().out
    assert "originality:" in out and str(wav) in out


@pytest.mark.parametrize("flags,words", [
    (["--key", "H major"], ["--key", "'H major'", "dorian"]),
    (["--pitch-range", "C6-C2"], ["--pitch-range", "'C6-C2'", "empty"]),
    (["--density", "0"], ["--density", "density", "> 0"]),
    (["--density", "-2"], ["--density", "density", "> 0"]),
    (["--key", "C major", "--pitch-range", "C#4-C#4"], ["'C major'", "'C#4-C#4'", "widen"]),
])
def test_cli_bad_control_values_end_with_one_line(trained, tmp_path, capsys, flags, words):
    rc, midi = _cli(trained, tmp_path, *flags)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not midi.exists()
    assert err.startswith("error: ") and "\n" not in err and all(w in err for w in words), err


def test_the_controls_benchmark_prints_a_table_per_control(trained, capsys):
    _, _, _, root = trained
    assert bench_controls.main(["--checkpoint", str(root / "out" / CHECKPOINT_LAST), "--cache-dir", str(root / "cache"),
                                "--pieces", "2", "--notes", "40"]) == 0
    out = capsys.readouterr().out
    for title in ("Key C major", "Pitch range", "Note density", "Length in seconds", "Repetition guard", "Originality"):
        assert f"**{title}" in out
    assert "| hard | 100.0% |" in out and "| C3-C5 | 100.0% |" in out
