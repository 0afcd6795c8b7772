"""Tests of melody_utils.generate.sample: generating notes on every path (the numpy stepper, torch, window
models), seeds, primers, the grammar mask held over whole pieces, and one BLAS thread."""

import numpy as np
import pytest
import torch

from melody_utils.generate import sample
from melody_utils.config import ModelConfig
from melody_utils.music.midi import Notes
from melody_utils.model.lstm import build_model
from melody_utils.generate.sample import generate, generate_notes
from melody_utils.model.stepper import NumpyStepper
from melody_utils.music.tokens import seed_vocab

from helpers import EXTRAS, chord_happy_model, grammar_violations, random_tokens, tiny_model

torch.set_num_threads(1)


# ---- generation ----
def greedy_reference(model, vocab, primer, n):
    """Greedy continuation computed by re-running the whole prefix through the model each time."""
    seq = torch.as_tensor(primer)[None]  # (1, P, F)
    with torch.no_grad():
        for _ in range(n):
            h, _ = model.encode(seq)
            last = h[:, -1]  # (1, H)
            pitch = model.pitch_head(last).argmax(-1)
            note = [pitch] + [lg.argmax(-1) for lg in model.heads(last, pitch)[1:]]
            seq = torch.cat([seq, torch.stack(note, -1)[:, None]], dim=1)
    return seq[0, len(primer):].numpy()


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("chained", [True, False])
def test_greedy_generation_matches_the_full_prefix_argmax(fast, chained, extra):
    model, vocab = tiny_model(chained=chained, velocity_bins=4, **extra)
    primer = random_tokens(vocab, 5)
    out = generate(model, vocab, 12, primer=primer, top_k=1, fast=fast)
    assert out.shape == (1, 12, 4)
    model.eval()
    np.testing.assert_array_equal(out[0], greedy_reference(model, vocab, primer, 12))


@pytest.mark.parametrize("arch", ["causal", "baseline", "advanced"])
def test_generate_shapes_ranges_and_seeds(arch):
    model, vocab = tiny_model(arch, velocity_bins=4, window=6)
    primer = random_tokens(vocab, 9)
    a = generate(model, vocab, 15, primer=primer, batch=3, seed=7, top_k=5, top_p=0.9)
    assert a.shape == (3, 15, 4) and a.dtype == np.int16
    assert ((a >= 0) & (a < np.array(vocab.sizes))).all()
    assert np.array_equal(a, generate(model, vocab, 15, primer=primer, batch=3, seed=7, top_k=5, top_p=0.9))
    assert not np.array_equal(a, generate(model, vocab, 15, primer=primer, batch=3, seed=8, top_k=5, top_p=0.9))
    assert not np.array_equal(a[0], a[1])  # rows draw their own notes
    if arch != "causal":  # the seed's models leave velocity constant
        assert len(np.unique(a[..., 3])) == 1


@pytest.mark.parametrize("extra", EXTRAS)
def test_fast_and_torch_paths_draw_the_same_notes(extra):
    model, vocab = tiny_model(velocity_bins=4, **extra)
    primer = random_tokens(vocab, 4)
    kw = dict(primer=primer, batch=2, seed=3, temperature=1.3, top_p=0.9)
    assert np.array_equal(generate(model, vocab, 20, **kw), generate(model, vocab, 20, fast=False, **kw))


def test_fast_path_is_picked_for_causal_models_on_cpu(monkeypatch):
    model, vocab = tiny_model()
    made = []
    monkeypatch.setattr(sample, "NumpyStepper", lambda m, *a: made.append(m) or NumpyStepper(m, *a))
    generate(model, vocab, 3)
    assert len(made) == 1
    generate(model, vocab, 3, fast=False)
    assert len(made) == 1


@pytest.mark.parametrize("arch,fast,extra", [("causal", True, {}), ("causal", False, {}), ("advanced", False, {}),
                                             ("causal", True, EXTRAS[3]), ("causal", False, EXTRAS[3])])
def test_continuing_from_generated_notes_equals_carrying_on(arch, fast, extra):
    # The carried state after feeding primer + notes equals re-reading that whole prefix.
    model, vocab = tiny_model(arch, window=32, **extra)
    primer = random_tokens(vocab, 6)
    out = generate(model, vocab, 10, primer=primer, top_k=1, fast=fast)[0]
    rest = generate(model, vocab, 6, primer=np.concatenate([primer, out[:4]]), top_k=1, fast=fast)[0]
    np.testing.assert_array_equal(rest, out[4:])


@pytest.mark.parametrize("arch", ["baseline", "advanced"])
def test_window_models_read_only_the_last_window(arch):
    model, vocab = tiny_model(arch, window=5)
    primer = random_tokens(vocab, 20)
    other = np.concatenate([random_tokens(vocab, 15, seed=1), primer[-5:]])  # same last window
    a = generate(model, vocab, 8, primer=primer, seed=1)
    assert np.array_equal(a, generate(model, vocab, 8, primer=other, seed=1))
    model.eval()
    with torch.no_grad():  # the whole window counts: dropping its first note changes the prediction
        x = torch.as_tensor(primer)[None]
        assert not torch.allclose(model(x[:, -5:])[0], model(x[:, -4:])[0])


def test_generate_restores_training_mode_and_ignores_dropout():
    model, vocab = tiny_model(dropout=0.5)
    model.train()
    a = generate(model, vocab, 10, fast=False)
    assert model.training
    assert np.array_equal(a, generate(model, vocab, 10, fast=False))
    assert np.array_equal(a, generate(model, vocab, 10))


def test_generate_rejects_bad_input():
    model, vocab = tiny_model()
    with pytest.raises(ValueError, match="n_notes"):
        generate(model, vocab, 0)
    with pytest.raises(ValueError, match="batch"):
        generate(model, vocab, 4, batch=0)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, vocab, 4, top_p=0)
    with pytest.raises(ValueError, match="primer"):
        generate(model, vocab, 4, primer=np.zeros((0, 3)))
    with pytest.raises(ValueError, match="primer: pitch id 99"):
        generate(model, vocab, 4, primer=np.array([[99, 0, 0]]))
    with pytest.raises(ValueError, match="checkpoint"):
        generate(model, seed_vocab(4), 4)
    with pytest.raises(ValueError, match="device 'gpu0'"):
        generate(model, vocab, 4, device="gpu0")


def test_generate_notes_decodes_and_keeps_the_primer_only_when_asked():
    model, vocab = tiny_model()
    primer = random_tokens(vocab, 7)
    new = generate_notes(model, vocab, 11, primer=primer, seed=2)
    assert isinstance(new, Notes) and len(new) == 11
    both = generate_notes(model, vocab, 11, primer=primer, seed=2, keep_primer=True)
    assert len(both) == 18
    np.testing.assert_array_equal(both.pitch[:7], primer[:, 0] + vocab.min_pitch)
    np.testing.assert_array_equal(both.pitch[7:], new.pitch)


def test_generated_notes_are_played_inside_their_bins_seeded_and_on_the_grid_when_asked():
    model, vocab = tiny_model(velocity_bins=8)
    rng = np.random.default_rng(0)
    corpus = [Notes.from_steps(rng.integers(40, 90, 300), rng.uniform(0.03, 1.2, 300), rng.uniform(0.04, 1.6, 300),
                               rng.integers(1, 128, 300))]
    played = vocab.with_spread(corpus)
    tokens = generate(model, played, 40, seed=4)[0]
    a, b = generate_notes(model, played, 40, seed=4), generate_notes(model, played, 40, seed=4)
    np.testing.assert_array_equal(a.start, b.start)  # the same seed, the same notes
    np.testing.assert_array_equal(a.velocity, b.velocity)
    again = played.encode(a)  # the sampled ids, each value inside its bin (the first note's step is its onset)
    np.testing.assert_array_equal(again[1:], tokens[1:])
    assert played.step_bins.quantize(a.start[:1])[0] == tokens[0, 1]
    grid = generate_notes(model, played.on_grid(), 40, seed=4)  # the grid setting: today's notes
    today = vocab.decode(tokens)
    for field in ("pitch", "start", "duration", "velocity"):
        np.testing.assert_array_equal(getattr(grid, field), getattr(today, field))
    assert len(np.unique(a.velocity)) > len(np.unique(grid.velocity))


def test_primer_length_gives_window_models_a_full_window():
    vocab = seed_vocab()
    causal = build_model(ModelConfig(arch="causal", hidden=8), vocab, 16)
    window = build_model(ModelConfig(arch="baseline", hidden=8), vocab, 16)
    assert sample.primer_length(causal, 8) == 8 and sample.primer_length(causal, 40) == 40
    assert sample.primer_length(window, 8) == 16 and sample.primer_length(window, 40) == 40


# ---- grammar-aware decoding: no key struck twice at one onset ----


@pytest.mark.parametrize("arch,chained,fast,extra", [
    ("causal", True, True, {}), ("causal", True, False, {}), ("causal", False, True, {}), ("causal", False, False, {}),
    ("causal", True, True, EXTRAS[3]), ("causal", True, False, EXTRAS[3]),
    ("baseline", False, False, {}), ("advanced", False, False, {})])
def test_no_generated_note_repeats_or_descends_at_one_onset(arch, chained, fast, extra):
    model, vocab = chord_happy_model(arch, chained, **extra)
    rng = np.random.default_rng(0)
    removed = []
    for trial in range(6):  # random seeds and sampling settings, greedy included
        knobs = dict(temperature=float(rng.choice([0.5, 1.0, 1.5])), top_k=int(rng.choice([0, 1, 3])),
                     top_p=float(rng.choice([1.0, 0.9, 0.5])))
        primer = random_tokens(vocab, 5, seed=trial)
        info = {}
        out = generate(model, vocab, 40, primer, batch=3, seed=trial, fast=fast, info=info, **knobs)
        for row in out:
            assert grammar_violations(primer, row) == 0, knobs
        assert 0.0 <= info["masked_mass"] < 1.0
        removed.append(info["masked_mass"])
    assert max(removed) > 0.05  # the model wanted such notes: the mask did remove mass


def test_a_long_primer_is_fed_once_and_generation_carries_the_state(monkeypatch):
    model, vocab = tiny_model()
    fed = []
    real_step = NumpyStepper.step
    monkeypatch.setattr(NumpyStepper, "step", lambda self, x, state: fed.append(len(x)) or real_step(self, x, state))
    generate(model, vocab, 10, primer=random_tokens(vocab, 600), batch=3)
    assert len(fed) == 600 + 9 and set(fed) == {3}  # one step per primer note, then one per new note: O(1) a note


def test_generation_runs_with_one_blas_thread(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    model, vocab = tiny_model()
    seen = []
    real_step = NumpyStepper.step

    def step(self, x, state):
        seen.append((torch.get_num_threads(), max(d["num_threads"] for d in threadpoolctl.threadpool_info())))
        return real_step(self, x, state)

    monkeypatch.setattr(NumpyStepper, "step", step)
    before = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=2):
        generate(model, vocab, 4)
        after = max(d["num_threads"] for d in threadpoolctl.threadpool_info())
    assert seen and set(seen) == {(1, 1)}
    assert torch.get_num_threads() == before and after == 2  # restored after generation
