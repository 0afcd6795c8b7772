"""Each model's piece memory (melody_utils.evaluate.memory_fit): fitted on validation pieces, kept in the
checkpoint, used by generation; off where it does not help."""

import numpy as np
import pytest
import torch

from melody_utils.config import get_config
from melody_utils.data.corpus import TokenCache
from melody_utils.evaluate import memory_fit
from melody_utils.evaluate.memory_fit import fit_checkpoint_memory, fit_memory
from melody_utils.generate.memory import MEMORY, MemorySettings, model_memory, scaled_weights
from melody_utils.generate.sample import generate
from melody_utils.model import checkpoint
from melody_utils.model.lstm import build_from_config

from melody_utils.music.tokens import seed_vocab

torch.set_num_threads(1)
BASE = memory_fit.FIT_BASE


def themes(n_pieces, n=24, repeats=3, jitter=0, seed=0, sizes=(40, 6, 6)):
    """Pieces that play a theme of distinct pitches ``repeats`` times; each repeat shifts some steps and
    durations by one bin when ``jitter`` (a performance's varied timing), else repeats it exactly."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n_pieces):
        theme = np.stack([rng.permutation(sizes[0])[:n], rng.integers(1, sizes[1] - 1, n), rng.integers(1, sizes[2] - 1, n)], 1)
        hearings = [theme.copy() for _ in range(repeats)]
        for h in hearings[1:]:
            moved = rng.random((n, 2)) < jitter
            h[:, 1:] += moved * rng.choice([-1, 1], (n, 2))
        pieces.append(np.concatenate(hearings))
    return pieces


def flat_logprobs(pieces, p=0.2):
    """A network that gives every true id the same probability ``p`` (one value per field)."""
    return [np.log(np.full((len(t) - 1, t.shape[1]), p)) for t in pieces]


def test_a_memory_that_helps_is_fitted_and_one_that_does_not_is_off():
    pieces = themes(4)
    settings, info = fit_memory(flat_logprobs(pieces), pieces, BASE)
    assert settings.strength > 0 and info["saved_nats"] > 0.5 and max(settings.weights) > 0.5
    # Half the validation pieces repeat their themes, half are random notes in a small vocabulary (pitches
    # match often, what follows a match is chance) that the network knows well. Fitted on all of them, the
    # weights come out above 0; held out, weights fitted on the repeats mislead on the random pieces more
    # than they help on the repeats: the memory is off for this model.
    rng = np.random.default_rng(1)
    noise = [np.stack([rng.integers(0, 6, 300), rng.integers(0, 6, 300), rng.integers(0, 6, 300)], 1) for _ in range(2)]
    folds = [pieces[0], noise[0], pieces[1], noise[1]]  # folds alternate: the repeats in one, the random pieces in the other
    lps = [flat_logprobs([p], 0.6 if p.shape[0] == 300 else 0.2)[0] for p in folds]
    settings, info = fit_memory(lps, folds, BASE)
    assert max(settings.weights) > 0.3 and settings.strength == 0.0  # in-sample weights, but off
    assert info["saved_nats"] == 0.0 and info["saved_at_full_strength"] < 0
    assert not scaled_weights(4.0, settings).any()  # off at any knob setting


def test_one_validation_piece_leaves_nothing_to_check_the_memory_on():
    pieces = themes(1)
    settings, info = fit_memory(flat_logprobs(pieces), pieces, BASE)
    assert settings.strength == 0.0 and "fewer than 2" in info["note"]


def test_the_timing_spread_is_fitted_to_how_repeats_vary_their_timing():
    exact, varied = themes(6, seed=2), themes(6, jitter=0.3, seed=2)
    s_exact, _ = fit_memory(flat_logprobs(exact), exact, BASE)
    s_varied, info = fit_memory(flat_logprobs(varied), varied, BASE)
    assert s_exact.timing_spread == 0.0 and s_varied.timing_spread > 0.0
    assert info["kernels"][f"{s_varied.timing_spread:g}/{s_varied.timing_width}"] > info["kernels"]["0/1"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny causal checkpoint on a corpus of repeated themes, with its memory fitted and stored."""
    vocab = seed_vocab()
    pieces = [t[:, :3] for t in themes(8, n=30, jitter=0.2, seed=3, sizes=(60, 12, 12))]
    cache = TokenCache.from_pieces(pieces, vocab, ["train"] * 4 + ["validation"] * 2 + ["test"] * 2)
    cfg = get_config("tiny", **{"model.hidden": 16})
    torch.manual_seed(0)
    path = checkpoint.save_checkpoint(tmp_path_factory.mktemp("memory") / "ckpt_best.pt", build_from_config(cfg, vocab),
                                      cfg, vocab, epoch=1)
    return path, cache, fit_checkpoint_memory(path, cache)


def test_fitted_memory_round_trips_through_the_checkpoint(fitted, tmp_path):
    path, cache, stored = fitted
    assert stored["fit"]["validation_pieces"] == 2 and stored["strength"] > 0
    model, vocab, _, ckpt = checkpoint.load_checkpoint(path)
    assert ckpt["memory"] == stored and model.piece_memory == stored
    settings = model_memory(model)
    assert settings == MemorySettings.from_dict(stored) != MEMORY
    assert list(settings.weights) == stored["weights"] and settings.timing_spread == stored["timing_spread"]
    assert MemorySettings.from_dict(settings.to_dict()) == settings
    exported = checkpoint.export_inference(path, tmp_path / "model.pt")
    assert model_memory(checkpoint.load_checkpoint(exported)[0]) == settings


def test_generation_plays_the_checkpoints_memory(fitted):
    path, cache, _ = fitted
    model, vocab, _, _ = checkpoint.load_checkpoint(path)
    primer = cache.piece_tokens(int(cache.piece_indices("test")[0]))[:45]
    kw = dict(primer=primer, batch=2, seed=3, memory=2.0)
    own = generate(model, vocab, 20, **kw)
    model.piece_memory = None  # what a checkpoint without a fitted memory plays: the piano corpus's
    assert not np.array_equal(generate(model, vocab, 20, **kw), own)
    model.piece_memory = {**MemorySettings.from_dict(fitted[2]).to_dict(), "strength": 0.0}  # a memory that did not help
    assert np.array_equal(generate(model, vocab, 20, **kw), generate(model, vocab, 20, **{**kw, "memory": 0.0}))


def test_a_window_model_keeps_the_piano_corpus_memory(fitted, tmp_path):
    _, cache, _ = fitted
    cfg = get_config("tiny", **{"model.arch": "baseline", "model.hidden": 8})
    path = checkpoint.save_checkpoint(tmp_path / "window.pt", build_from_config(cfg, cache.vocab), cfg, cache.vocab)
    assert fit_checkpoint_memory(path, cache) is None and "memory" not in checkpoint.read_checkpoint(path)
    assert "not fitted" in memory_fit.describe_fit(None)
