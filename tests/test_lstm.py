"""Tests of melody_utils.model.lstm: the window models and the causal LSTM, their heads, state and
interval inputs, and a tiny model learning one batch."""

import pytest
import torch

from melody_utils.config import ModelConfig
from melody_utils.model import lstm as MD
from melody_utils.model.lstm import (CausalLSTM, MusicLSTM, MusicLSTM_Advanced, build_model, count_parameters,
                                seed_model_config)
from melody_utils.music.tokens import seed_vocab

torch.set_num_threads(1)

TINY = dict(emb_pitch=8, emb_step=4, emb_dur=4, emb_vel=4, hidden=16, layers=2, dropout=0.0, attn_heads=2)


def tiny(arch, **kw):
    return ModelConfig(arch=arch, **{**TINY, **kw})


def random_tokens(vocab, B, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (B, T), generator=g) for n in vocab.sizes], dim=-1)  # (B, T, F)


def make_batch(vocab, B=4, T=10, seed=0):
    seq = random_tokens(vocab, B, T + 1, seed)
    return {"inputs": seq[:, :-1], "targets": seq[:, 1:], "next": seq[:, -1]}


@pytest.mark.parametrize("arch,cls", [("baseline", MusicLSTM), ("advanced", MusicLSTM_Advanced), ("causal", CausalLSTM)])
@pytest.mark.parametrize("velocity_bins", [0, 8])
def test_output_shapes_and_loss(arch, cls, velocity_bins):
    vocab = seed_vocab(velocity_bins)
    torch.manual_seed(0)
    model = build_model(tiny(arch), vocab, window=10)
    assert isinstance(model, cls) and model.causal == (arch == "causal")
    batch = make_batch(vocab)
    logits = model(batch["inputs"])
    n_heads = len(vocab.sizes) if arch == "causal" else 3  # window models leave velocity out
    assert [lg.shape[-1] for lg in logits] == list(vocab.sizes[:n_heads])
    lead = (4, 10) if arch == "causal" else (4,)
    assert all(lg.shape[:-1] == lead for lg in logits)
    total, parts = model.loss(batch)
    assert list(parts) == list(vocab.fields[:n_heads])
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    total.backward()  # differentiable end to end
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_window_models_ignore_velocity_column():
    vocab = seed_vocab(8)
    torch.manual_seed(0)
    for arch in ("baseline", "advanced"):
        model = build_model(tiny(arch), vocab, 10).eval()
        x = random_tokens(vocab, 2, 10)
        y = x.clone()
        y[..., 3] = (y[..., 3] + 1) % 8
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(model(x), model(y)))


def test_parameter_counts_at_seed_sizes():
    vocab = seed_vocab()
    baseline = build_model(seed_model_config("baseline"), vocab, 50)
    advanced = build_model(seed_model_config("advanced"), vocab, 50)
    assert abs(count_parameters(baseline) - 1.0e6) / 1.0e6 < 0.05
    assert abs(count_parameters(advanced) - 20.6e6) / 20.6e6 < 0.05
    assert advanced.lstm.num_layers == 3 and advanced.lstm.bidirectional and advanced.attn.num_heads == 4


def test_causal_outputs_do_not_see_the_future():
    vocab = seed_vocab()
    torch.manual_seed(0)
    model = build_model(tiny("causal"), vocab, 12).eval()
    x = random_tokens(vocab, 2, 12)
    y = x.clone()
    y[:, 7:] = random_tokens(vocab, 2, 5, seed=1)  # change notes 7..11
    p = random_tokens(vocab, 2, 12, seed=2)[..., 0]
    with torch.no_grad():
        a, b = model(x, next_pitch=p), model(y, next_pitch=p)
    for la, lb in zip(a, b):
        assert torch.allclose(la[:, :7], lb[:, :7], atol=1e-6)  # positions 0..6 unchanged
        assert not torch.allclose(la[:, 7:], lb[:, 7:])


@pytest.mark.parametrize("chained,extra", [(True, {}), (False, {}), (True, dict(interval_emb=4, chain_all=True)),
                                           (False, dict(interval_emb=4))])
def test_stateful_step_equals_full_forward(chained, extra):
    vocab = seed_vocab(4)
    torch.manual_seed(0)
    model = build_model(tiny("causal", chained=chained, **extra), vocab, 9).eval()
    seq = random_tokens(vocab, 3, 9)
    with torch.no_grad():
        full = model(seq[:, :-1], next_pitch=seq[:, 1:, 0])  # [(B, T, V)]
        state = None
        for t in range(8):
            logits, state = model.step(seq[:, t], state, next_pitch=seq[:, t + 1, 0])
            for f, lg in enumerate(logits):
                assert torch.allclose(lg, full[f][:, t], atol=1e-5)


def test_chained_heads_depend_on_the_chosen_pitch():
    vocab = seed_vocab()
    torch.manual_seed(0)
    x = random_tokens(vocab, 2, 6)
    p0, p1 = torch.zeros(2, 6, dtype=torch.long), torch.full((2, 6), 40)
    for chained in (True, False):
        model = build_model(tiny("causal", chained=chained), vocab, 6).eval()
        with torch.no_grad():
            a, b = model(x, next_pitch=p0), model(x, next_pitch=p1)
        assert torch.equal(a[0], b[0])  # the pitch head never sees the chosen pitch
        assert torch.equal(a[1], b[1]) != chained


def test_chain_all_heads_see_the_fields_chosen_before_them():
    vocab = seed_vocab(4)
    torch.manual_seed(0)
    model = build_model(tiny("causal", chain_all=True), vocab, 6).eval()
    x, p = random_tokens(vocab, 2, 6), torch.zeros(2, 6, dtype=torch.long)
    for k in range(3):  # change the chosen id of field k (step, duration, velocity)
        r0 = torch.zeros(2, 6, 3, dtype=torch.long)
        r1 = r0.clone()
        r1[..., k] = 3
        with torch.no_grad():
            a, b = model(x, next_pitch=p, next_fields=r0), model(x, next_pitch=p, next_fields=r1)
        assert [torch.equal(la, lb) for la, lb in zip(a, b)] == [f <= k + 1 for f in range(4)]  # only later heads move


def test_interval_inputs_see_the_previous_pitch_across_calls():
    vocab = seed_vocab()
    torch.manual_seed(0)
    model = build_model(tiny("causal", interval_emb=4), vocab, 6).eval()
    x = random_tokens(vocab, 1, 6)
    x[0, 2:4, 0] = torch.tensor([40, 42])
    y = x.clone()
    y[0, 2, 0] = 44  # only the third note's pitch differs: the fourth note is a step up or a step down
    with torch.no_grad():
        _, sx = model.encode(x[:, :3])
        _, sy = model.encode(y[:, :3])
        sy = (sx[0], sx[1], sy[2])  # same LSTM state, other last pitch: the interval of note 4 differs
        hx, _ = model.encode(x[:, 3:4], sx)
        hy, _ = model.encode(x[:, 3:4], sy)
    assert torch.equal(sx[2], x[:, 2, 0]) and not torch.allclose(hx, hy)


@pytest.mark.parametrize("arch", ["causal", "baseline", "advanced"])
def test_tiny_model_overfits_one_batch(arch):
    vocab = seed_vocab()
    torch.manual_seed(0)
    model = build_model(tiny(arch, hidden=32), vocab, 8)
    batch = make_batch(vocab, B=4, T=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(batch)[0].item()
    for _ in range(50):
        opt.zero_grad()
        loss, _ = model.loss(batch)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first, (first, loss.item())


def test_build_model_rejects_bad_configs():
    vocab = seed_vocab()
    with pytest.raises(ValueError, match="model.arch"):
        build_model(tiny("transformer"), vocab, 8)
    with pytest.raises(ValueError, match="model.attn_heads"):
        build_model(tiny("advanced", attn_heads=5), vocab, 8)
    with pytest.raises(ValueError, match="model.dropout"):
        build_model(tiny("causal", dropout=1.0), vocab, 8)
    model = build_model(tiny("causal"), vocab, 8)
    with pytest.raises(ValueError, match=r"\(B, T, F>=3\)"):
        model(torch.zeros(4, 3, dtype=torch.long))


def test_reset_rows_clears_the_interval_input():
    pitch = torch.tensor([[5, 7], [5, 7]])
    assert MD.interval_ids(pitch, torch.tensor([-1, 3]))[:, 0].tolist() == [MD.NO_INTERVAL, MD.INTERVAL_MAX + 2]
    state = (torch.ones(2, 2, 4), torch.ones(2, 2, 4), torch.tensor([3, 3]))
    h, c, prev = MD.reset_rows(state, torch.tensor([True, False]))
    assert h[:, 0].abs().sum() == 0 and c[:, 0].abs().sum() == 0 and (h[:, 1] == 1).all()
    assert prev.tolist() == [-1, 3]
