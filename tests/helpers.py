"""What several test files share: MIDI files written on the fly (no binary test files in the repo),
small token caches and configs, and tiny models."""

from pathlib import Path

import numpy as np
import torch

from melody_utils.cli import commands as cli
from melody_utils.config import ModelConfig, get_config
from melody_utils.data.corpus import TokenCache
from melody_utils.model.lstm import build_model
from melody_utils.music.midi import Notes, notes_to_midi
from melody_utils.music.quantize import log_bins, seed_duration_bins
from melody_utils.music.tokens import Vocab, seed_vocab

# ---- notes and MIDI files ----

D_MINOR = (0, 2, 4, 5, 7, 9, 10)  # the pitch classes of D minor (C = 0)


def random_notes(n: int = 60, seed: int = 0, chord_every: int = 4) -> Notes:
    """Seeded piano-range notes with some chords (step 0) and varied durations."""
    rng = np.random.default_rng(seed)
    step = rng.choice([0.0, 0.125, 0.25, 0.5], size=n, p=[0.2, 0.3, 0.3, 0.2])
    step[::chord_every] = 0.0
    step[0] = 0.0
    pitch = rng.integers(36, 96, size=n)
    dur = rng.uniform(0.05, 1.5, size=n)
    vel = rng.integers(30, 120, size=n)
    notes = Notes.from_steps(pitch, step, dur, vel, t0=0.25).sorted()
    _, first = np.unique(np.stack([notes.start, notes.pitch]), axis=1, return_index=True)
    return notes[np.sort(first)]  # one note per (onset, pitch), like a real keyboard


def one_note(pitch=69, duration=1.0, velocity=90, start=0.0):
    """A single note (A4, 1 s, velocity 90 unless told otherwise)."""
    return Notes([pitch], [start], [duration], [velocity])


def write_midi_folder(folder: Path, n_good: int = 4, notes_per_file: int = 60) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [notes_to_midi(random_notes(notes_per_file, seed=i), folder / f"piece{i:02d}.mid") for i in range(n_good)]


# ---- token caches and configs for training ----


def make_cache(n_train: int = 4, length: int = 120, seed: int = 0) -> TokenCache:
    """Pieces that repeat a short random motif (learnable) plus noise, seed vocabulary."""
    vocab = seed_vocab()
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n_train + 2):
        motif = np.stack([rng.integers(0, s, 8) for s in vocab.sizes], 1)
        piece = np.tile(motif, (length // 8 + 1, 1))[:length]
        noise = rng.random(length) < 0.1
        piece[noise, 0] = rng.integers(0, vocab.sizes[0], noise.sum())
        pieces.append(piece)
    return TokenCache.from_pieces(pieces, vocab, splits=["train"] * n_train + ["validation", "test"])


def tiny_cfg(**overrides):
    """The tiny preset made smaller still, on the seed grid and the CPU; ``overrides`` as "section.field": value."""
    base = {
        "model.hidden": 16, "model.emb_pitch": 8, "model.emb_step": 4, "model.emb_dur": 4, "model.dropout": 0.1,
        "data.window": 16, "data.stride": 16, "data.seed_window": 8, "data.bins": "seed",
        "train.batch_size": 8, "train.epochs": 2, "train.max_steps": 0, "train.warmup_steps": 3,
        "train.device": "cpu", "train.seed": 0,
    }
    base.update(overrides)
    return get_config("tiny", **base)


# ---- tiny models ----

TINY = dict(emb_pitch=8, emb_step=4, emb_dur=4, emb_vel=4, hidden=16, layers=2, dropout=0.0, attn_heads=2)

# The optional parts of a causal model: interval inputs, every head chained to the fields before it.
EXTRAS = [{}, dict(interval_emb=4), dict(chain_all=True), dict(interval_emb=4, chain_all=True)]


def tiny_model(arch="causal", velocity_bins=0, window=8, seed=0, **kw):
    """An untrained tiny model and its seed vocabulary, seeded, its weights scaled up (far from uniform)."""
    torch.manual_seed(seed)
    vocab = seed_vocab(velocity_bins)
    model = build_model(ModelConfig(arch=arch, **{**TINY, **kw}), vocab, window)
    with torch.no_grad():  # larger weights than the init, so the distributions are far from uniform
        for p in model.parameters():
            p.mul_(3.0)
    return model, vocab


def random_tokens(vocab, n, seed=0):
    """``n`` seeded random notes of ``vocab`` as ids, shape (n, F)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in vocab.sizes], axis=1)  # (n, F)


def chord_vocab():
    """A vocabulary whose step bin 0 is exactly 0 s (same onset as the previous note)."""
    return Vocab(log_bins(6, 0.05, 1.0, zero=True), seed_duration_bins(), name="log")


def chord_happy_model(arch, chained=True, seed=0, **extra):
    """A model that loves 0 steps and low pitches, so it would often repeat or descend at one onset."""
    torch.manual_seed(seed)
    vocab = chord_vocab()
    model = build_model(ModelConfig(arch=arch, chained=chained, **TINY, **extra), vocab, 8)
    with torch.no_grad():
        step_head = model.field_heads[0] if arch == "causal" else model.heads[1]
        step_head.bias[0] += 4.0
        pitch_head = model.pitch_head if arch == "causal" else model.heads[0]
        pitch_head.bias[:] = torch.linspace(3.0, -3.0, vocab.n_pitch)
    return model, vocab


def grammar_violations(primer, new) -> int:
    """Notes with a 0 step and a pitch at or below the note before them."""
    t = np.concatenate([primer[-1:], new])
    return int(((t[1:, 1] == 0) & (t[1:, 0] <= t[:-1, 0])).sum())


# ---- statistics and sweeps ----


def random_grid_notes(rng, n, low=48, high=84):
    """``n`` notes of random pitches in [low, high), their steps and durations drawn from a few grid values."""
    return Notes.from_steps(rng.integers(low, high, n), rng.choice([0.0, 0.125, 0.25, 0.5], n), rng.choice([0.125, 0.25, 0.5, 1.0], n))


def looped_notes(rng, n, period=4):
    """A loop: ``period`` random pitches played over and over, ``n`` notes in all."""
    pattern = rng.integers(60, 72, period)
    return Notes.from_steps(np.resize(pattern, n), np.full(n, 0.25), np.full(n, 0.25))


def sweep_row(temperature, top_p, mean_oa, degenerate_rate):
    """One row of a sampling sweep's table (melody_utils.evaluate.sweep), its loop share the degenerate rate."""
    return {"temperature": temperature, "top_p": top_p, "mean_oa": mean_oa, "degenerate_rate": degenerate_rate,
            "loop_share": degenerate_rate}


# ---- the command line ----


def cli_fails(argv, capsys, *needles, code=1):
    """Run the command line on ``argv``: it exits with ``code`` and an ``error:`` message (no traceback)
    holding every one of ``needles``. Returns the message."""
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err
