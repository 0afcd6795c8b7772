"""The piece memory (melody_utils.generate.memory): what it predicts, how it mixes with a model, its knob."""

import numpy as np
import pytest
import torch

from melody_utils.cli import commands as cli
from melody_utils.evaluate import likelihood
from melody_utils.generate import memory
from melody_utils.generate.memory import MEMORY, MemorySettings, PieceMemory, fit_weights, mixed_logprobs, piece_counts, scaled_weights
from melody_utils.generate.sample import generate, model_generate_fn

from helpers import chord_happy_model, grammar_violations, random_tokens, tiny_model

torch.set_num_threads(1)
SIZES = (48, 5, 4)  # a small vocabulary: pitch, step, duration


def theme(n=24, seed=0):
    """n notes with distinct pitches (no match inside it)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(SIZES[0])[:n], rng.integers(0, SIZES[1], n), rng.integers(0, SIZES[2], n)], 1)


def feed(mem: PieceMemory, notes):
    """Notes (N, F) of one row, or (N, B, F)."""
    for note in notes:
        mem.observe(note if note.ndim == 2 else note[None])


def test_an_exact_repeat_is_continued_with_high_probability():
    a = theme(40)
    piece = np.concatenate([a, a[:20]])  # the theme, then its first 20 notes again (40 notes later)
    mem = PieceMemory(1, len(piece) + 1, 1.0)
    feed(mem, piece)
    uniform = np.zeros((1, 48))
    p = np.exp(mem.mix(0, uniform))[0]
    L = piece_counts(np.concatenate([piece, a[20:21]]))[0][-1]
    assert L == 20 and p.argmax() == a[20, 0] and p[a[20, 0]] >= MEMORY.weights[L - 1]  # the fitted weight of its length
    mem.chose(0, np.array([a[20, 0]]))
    p_step = np.exp(mem.mix(1, np.zeros((1, 5))))[0]
    assert p_step.argmax() == a[20, 1] and p_step[a[20, 1]] > 0.9  # Bayes: the pitch agreed, the weight grew
    lengths, counts = piece_counts(piece, MemorySettings(order=16))
    assert lengths[40 + 16] == 16 and counts[40 + 16].tolist() == [1, 1, 1, 1]  # one candidate, the true note


def test_with_no_match_nothing_changes():
    a = theme()
    mem = PieceMemory(2, len(a) + 1, 2.0)
    feed(mem, np.stack([a, a], 1))
    logits = np.random.default_rng(1).normal(size=(2, 48))
    assert np.array_equal(mem.mix(0, logits), logits)  # no earlier pitch equals the last: no candidate
    lp = np.log(np.random.default_rng(2).uniform(0.01, 1, (len(a) - 1, 3)))
    lengths, counts = piece_counts(a)
    assert not lengths.any()
    assert np.array_equal(mixed_logprobs(lp, lengths[1:], counts[1:], scaled_weights(2.0)), lp)


def test_mixed_fields_sum_to_one_and_multiply_to_the_joint_mixture():
    rng = np.random.default_rng(3)
    a = theme(12)
    b = a.copy()
    b[-1, 1:] = (a[-1, 1:] + 1) % SIZES[1:]  # a second hearing that ends with other timing
    others = np.setdiff1d(np.arange(SIZES[0]), a[:, 0])
    c1, c2 = theme(3, seed=1), theme(3, seed=2)  # different notes (not in a) before the second and third hearings
    c1[:, 0], c2[:, 0] = others[:3], others[3:6]
    piece = np.concatenate([a, c1, b, c2, a])  # the last note: two candidates, one agreeing with it
    near = MemorySettings(min_distance=0)  # they lie 15 and 30 notes back
    mem = PieceMemory(1, len(piece), 1.5, near)
    feed(mem, piece[:-1])
    joint, lp = 1.0, np.zeros((1, 3))
    for f, size in enumerate(SIZES):
        z = rng.normal(size=(1, size))
        lp[0, f] = z[0, piece[-1, f]] - np.log(np.exp(z).sum())  # the network's log-probability of the true id
        logp = mem.mix(f, z)
        assert np.exp(logp).sum() == pytest.approx(1.0)
        joint *= np.exp(logp[0, piece[-1, f]])
        mem.chose(f, piece[-1:, f])
    # generation and scoring agree, and the product over fields is the mixture of the joint distributions
    lengths, counts = piece_counts(piece, near)
    assert lengths[-1] == 11 and counts[-1].tolist() == [2, 2, 1, 1]
    lam = scaled_weights(1.5, near)[11]
    expect = (1 - lam) * np.exp(lp.sum()) + lam * 0.5
    assert joint == pytest.approx(expect)
    assert np.exp(mixed_logprobs(lp, lengths[-1:], counts[-1:], scaled_weights(1.5, near)).sum()) == pytest.approx(expect)


def test_velocity_stays_the_networks_while_the_other_fields_repeat():
    a = theme(30)
    vel = np.random.default_rng(4).integers(0, 8, (60, 1))
    piece = np.concatenate([np.concatenate([a, a]), vel], 1)  # a repeat, with its own velocities
    mem = PieceMemory(1, len(piece) + 1, 2.0)
    feed(mem, piece[:45])
    z = np.random.default_rng(5).normal(size=(1, 48))
    assert not np.allclose(mem.mix(0, z), z)  # the pitch is mixed ...
    mem.chose(0, piece[45:46, 0])
    v = np.random.default_rng(6).normal(size=(1, 8))
    for f in (1, 2):
        mem.mix(f, np.zeros((1, SIZES[f])))
        mem.chose(f, piece[45:46, f])
    assert np.array_equal(mem.mix(3, v), v)  # ... the velocity is the network's
    lp = np.log(np.random.default_rng(7).uniform(0.01, 1, (len(piece) - 1, 4)))
    lengths, counts = piece_counts(piece)
    mixed = mixed_logprobs(lp, lengths[1:], counts[1:], scaled_weights(2.0))
    assert np.array_equal(mixed[:, 3], lp[:, 3]) and not np.allclose(mixed[:, 0], lp[:, 0])
    every = mixed_logprobs(lp, lengths[1:], counts[1:], scaled_weights(2.0), fields=4)
    assert not np.allclose(every[:, 3], lp[:, 3])  # with fields=4 it would repeat the velocities too


def test_strength_scales_the_odds():
    lam = scaled_weights(1.0)
    assert lam[0] == 0 and np.allclose(lam[1:], MEMORY.weights)
    assert not scaled_weights(0.0).any()
    stronger = scaled_weights(2.0)[1:]
    assert np.all(stronger >= lam[1:]) and np.all(stronger < 1)
    odds = lambda x: x / (1 - x)  # noqa: E731
    i = int(np.argmax(lam[1:] > 0))
    assert odds(stronger[i]) == pytest.approx(2 * odds(lam[1 + i]))


def test_fitted_weights_follow_how_well_the_memory_predicts():
    repeats = [np.concatenate([theme(24, s), theme(24, s)]) for s in range(3)]  # every second half is a repeat
    useful = [np.log(np.full((len(p) - 1, 3), 0.5)) for p in repeats]
    start = MemorySettings(order=8, min_distance=0, weights=(0.0,) * 8)
    fitted, support = fit_weights(useful, repeats, start)
    assert fitted.weights[-1] >= 0.9 and support[8] > 0 and fitted.order == 8
    wrong = [p.copy() for p in repeats]
    for p in wrong:
        p[24:, 1] = (p[:24, 1] + 1) % 5  # the repeats change their timing: the memory misleads
    fitted, _ = fit_weights(useful, wrong, start)
    assert fitted.weights[-1] <= 0.05


def test_likelihood_of_a_repeating_piece_is_lower_with_the_memory():
    model, vocab = tiny_model(velocity_bins=4)
    a = random_tokens(vocab, 40, seed=1)
    piece = np.concatenate([a, a, a])
    plain = likelihood.piece_nll(model, [piece])
    mixed = likelihood.piece_memory_nll(model, [piece])
    assert mixed["n_notes"] == plain["n_notes"]
    assert mixed["nats"]["total"] < plain["nats"]["total"] - 1.0
    off = likelihood.piece_memory_nll(model, [piece], strength=0.0)
    assert off["nats"]["total"] == pytest.approx(plain["nats"]["total"], rel=1e-5)


@pytest.mark.parametrize("arch,fast", [("causal", True), ("causal", False), ("baseline", False)])
def test_generation_with_memory_repeats_more_and_memory_zero_changes_nothing(arch, fast):
    model, vocab = tiny_model(arch, velocity_bins=4, chained=arch == "causal")
    a = random_tokens(vocab, 40, seed=2)
    primer = np.concatenate([a, a])  # a theme heard twice: the memory would start it a third time
    kw = dict(primer=primer, batch=2, seed=5, fast=fast)
    base = generate(model, vocab, 16, **kw)
    assert np.array_equal(generate(model, vocab, 16, memory=0.0, **kw), base)
    strong = generate(model, vocab, 16, memory=2.0, **kw)
    n_fields = len(model.sizes)
    assert (strong[:, :, :n_fields] == a[:16, :n_fields]).mean() > (base[:, :, :n_fields] == a[:16, :n_fields]).mean()


def test_fast_and_torch_paths_agree_with_memory():
    model, vocab = tiny_model(velocity_bins=4, chain_all=True)
    a = random_tokens(vocab, 10, seed=4)
    kw = dict(primer=np.concatenate([a, a]), batch=3, seed=1, top_p=0.9, memory=1.5)
    assert np.array_equal(generate(model, vocab, 20, **kw), generate(model, vocab, 20, fast=False, **kw))


@pytest.mark.parametrize("arch,fast", [("causal", True), ("causal", False), ("baseline", False)])
def test_the_grammar_mask_holds_over_the_memory(arch, fast):
    model, vocab = chord_happy_model(arch, chained=arch == "causal")
    bad = random_tokens(vocab, 6, seed=3)
    bad[:, 0] = [40, 30, 20, 40, 30, 20]
    bad[1:, 1] = 0  # descending at one onset: what the memory would copy
    primer = np.concatenate([bad] * 4)
    out = generate(model, vocab, 30, primer, batch=2, seed=0, fast=fast, memory=2.0, top_k=1)
    for row in out:
        assert grammar_violations(primer, row) == 0


@pytest.mark.parametrize("value", [-0.5, 4.5, float("nan"), "1", True, None])
def test_bad_memory_values_name_the_parameter(value):
    model, vocab = tiny_model()
    with pytest.raises(ValueError, match=r"^memory must be a number in \[0, 4\]"):
        generate(model, vocab, 4, memory=value)
    with pytest.raises(ValueError, match="memory"):
        model_generate_fn(model, vocab)(memory=value)


def test_cli_rejects_a_bad_memory_in_one_line(capsys):
    code = cli.main(["generate", "--memory", "5"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--memory" in err and "[0, 4]" in err


def test_no_candidate_lies_within_the_minimum_distance():
    loop = np.concatenate([theme(4)] * 5)  # a 4-note loop heard five times
    for distance in (0, 8):
        mem = PieceMemory(1, len(loop), 1.0, MemorySettings(min_distance=distance, no_loops=False))
        feed(mem, loop)
        assert not np.array_equal(mem.mix(0, np.zeros((1, 48))), np.zeros((1, 48)))
        assert len(mem.cand[0]) and all(len(loop) - j > distance for j in mem.cand[0])
    mem = PieceMemory(1, 12, 1.0, MemorySettings(min_distance=12))
    feed(mem, loop[:12])
    assert np.array_equal(mem.mix(0, np.zeros((1, 48))), np.zeros((1, 48)))  # nothing far enough back


def test_a_passage_is_repeated_once_but_no_loop_goes_round_again():
    a = theme(8)
    settings = MemorySettings(min_distance=0, no_loops=True)
    mem = PieceMemory(1, 16, 2.0, settings)
    feed(mem, np.concatenate([a, a[:7]]))  # the second hearing lacks its last note: the memory completes it
    assert np.exp(mem.mix(0, np.zeros((1, 48))))[0].argmax() == a[7, 0]
    mem = PieceMemory(1, 16, 2.0, settings)
    feed(mem, np.concatenate([a, a]))  # heard twice: a third time would be a loop
    assert np.array_equal(mem.mix(0, np.zeros((1, 48))), np.zeros((1, 48)))
    lengths, _ = piece_counts(np.concatenate([a, a, a]), settings)
    assert lengths[9:16].all() and not lengths[16:].any()  # the loop was not fed past two hearings
    lengths, _ = piece_counts(np.concatenate([a, a, a]), MemorySettings(min_distance=0, no_loops=False))
    assert lengths[16:].all()


@pytest.mark.parametrize("spread, width", [(0.3, 1), (0.5, 2)])
def test_the_timing_kernel_spreads_a_candidate_over_its_neighbours_and_sums_to_one(spread, width):
    size = 12
    for c in range(size - width):  # the last bins lose what would fall beyond the vocabulary (that id never occurs)
        k = np.array([memory.timing_kernel(np.array([c]), x, spread, width)[0] for x in range(size)])
        assert k.sum() == pytest.approx(1.0) and k[c] == k.max() and k[c] >= 1 - spread
        assert np.count_nonzero(k) == 1 + min(c, width) + width  # its own bin and width bins either side
        assert np.allclose(memory.spread_histogram(np.eye(size)[c], spread, width), k)
    assert memory.timing_kernel(np.arange(5), 2, 0.0, 1).tolist() == [0, 0, 1, 0, 0]  # no spread: exact copies


def test_with_a_timing_spread_generation_and_scoring_agree_note_by_note():
    rng = np.random.default_rng(8)
    a = theme(16)
    b = a.copy()
    b[::3, 1:] = np.clip(a[::3, 1:] + 1, 0, np.array(SIZES[1:]) - 1)  # a repeat with some timing one bin off
    piece = np.concatenate([a, b, a[:10]])
    settings = MemorySettings(min_distance=0, no_loops=False, timing_spread=0.3, timing_width=1)
    lengths, counts = piece_counts(piece, settings)
    exact = piece_counts(piece, MemorySettings(min_distance=0, no_loops=False))[1]
    assert not np.array_equal(counts, exact) and np.array_equal(counts[:, :2], exact[:, :2])  # the pitch stays exact
    lam, mixed = scaled_weights(1.5, settings), 0
    for t in (20, 37, 40, len(piece) - 1):  # generation's mixture of the true note = scoring's, field by field
        mem = PieceMemory(1, len(piece), 1.5, settings)
        feed(mem, piece[:t])
        lp = np.zeros((1, 3))
        for f, size in enumerate(SIZES):
            z = rng.normal(size=(1, size))
            lp[0, f] = z[0, piece[t, f]] - np.log(np.exp(z).sum())
            logp = mem.mix(f, z)
            mixed += mem.p_mix is not None
            if mem.p_mix is None:  # no candidate left: the network's logits, unchanged
                logp = z - np.log(np.exp(z).sum())
            assert np.exp(logp).sum() <= 1 + 1e-9
            assert logp[0, piece[t, f]] == pytest.approx(
                mixed_logprobs(lp, lengths[t: t + 1], counts[t: t + 1], lam)[0, f], abs=1e-9)
            mem.chose(f, piece[t: t + 1, f])
    assert mixed >= 9  # most fields of these notes were mixed with the memory
