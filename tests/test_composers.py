"""Composer conditioning: ids from the cache, composer dropout, the stepper, generation, names."""

import numpy as np
import pytest
import torch

from melody_utils.cli import commands as cli
from melody_utils.model.checkpoint import CHECKPOINT_LAST, composer_names, load_checkpoint, save_checkpoint
from melody_utils.data.composers import composer_id, resolve_composer
from helpers import write_midi_folder
from melody_utils.config import Config, DataConfig, ModelConfig, get_config
from melody_utils.data.corpus import TokenCache, prepare
from melody_utils.data.windows import MusicDataset, make_loader
from melody_utils.model.lstm import build_model
from melody_utils.generate.sample import generate
from melody_utils.generate.settings import SamplingSettings
from melody_utils.model.stepper import NumpyStepper
from melody_utils.music.tokens import seed_vocab
from melody_utils.train.loop import train

torch.set_num_threads(1)

NAMES = ["Frédéric Chopin", "Ludwig van Beethoven", "Johann Sebastian Bach", "Carl Philipp Emanuel Bach"]
TINY = dict(emb_pitch=16, emb_step=4, emb_dur=4, hidden=32, layers=1, dropout=0.0)


def toy_cache(n_pieces=64, notes=17, seed=0, splits=None):
    """Two composers that differ clearly: after a first middle C, "High" plays pitch ids 60-80 and
    "Low" 5-25, so from a middle-C primer only the composer tells which register comes next."""
    rng = np.random.default_rng(seed)
    arrays, composers = [], []
    for i in range(n_pieces):
        lo = 60 if i % 2 == 0 else 5
        pitch = np.concatenate([[39], rng.integers(lo, lo + 21, notes - 1)])
        arrays.append(np.stack([pitch, rng.integers(0, 4, notes), rng.integers(0, 4, notes)], 1))
        composers.append("High" if i % 2 == 0 else "Low")
    return TokenCache.from_pieces(arrays, seed_vocab(), splits=splits, composers=composers)


def test_cache_maps_composers_to_ids_and_keeps_them(tmp_path):
    vocab = seed_vocab()
    arrays = [np.zeros((5, 3), np.int16)] * 5
    cache = TokenCache.from_pieces(arrays, vocab, splits=["train", "train", "train", "validation", "test"],
                                   composers=["Schubert", "Bach", "", "Bach", "Liszt"])
    assert cache.vocab.composers == ("Bach", "Schubert")  # training composers, sorted; Liszt only held out
    np.testing.assert_array_equal(cache.composer_ids, [2, 1, 0, 1, 0])  # unnamed and unknown -> 0 "any"
    back = TokenCache.load(cache.save(tmp_path / "c.npz"))
    assert back.vocab == cache.vocab and back.vocab.composers == ("Bach", "Schubert")


def test_prepare_reads_composers_from_a_folder_metadata_csv(tmp_path):
    folder = tmp_path / "midi"
    write_midi_folder(folder, n_good=4)
    rows = ["path,split,composer", "piece00.mid,train,Satie", "piece01.mid,train,Debussy",
            "piece02.mid,validation,Satie", "piece03.mid,test,Ravel"]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    cache = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "cache", progress=False, workers=1)
    assert cache.vocab.composers == ("Debussy", "Satie")
    ids = dict(zip([p["name"] for p in cache.pieces], cache.composer_ids.tolist()))
    assert ids == {"piece00": 2, "piece01": 1, "piece02": 2, "piece03": 0}  # Ravel: only held out -> "any"


def test_composer_dropout_rate_and_reproducibility():
    cache = toy_cache(n_pieces=40, notes=200)
    ds = MusicDataset(cache, "train", window=8, stride=1, seed=3, composer_dropout=0.25)
    true = ds.true_composer.numpy()
    assert len(true) > 4000 and (true > 0).all()
    dropped = (ds.composer.numpy() == 0).mean()
    assert 0.22 < dropped < 0.28
    first = ds.composer.clone()
    ds.set_epoch(1)
    assert not torch.equal(ds.composer, first)  # a fresh draw every epoch ...
    again = MusicDataset(cache, "train", window=8, stride=1, seed=3, composer_dropout=0.25)
    again.set_epoch(1)
    assert torch.equal(again.composer, ds.composer)  # ... and the same one for the same (seed, epoch)
    batch = ds.__getitems__([0, 5, 9])
    assert torch.equal(batch["composer"], ds.composer[[0, 5, 9]])
    plain = MusicDataset(cache, "train", window=8, stride=1, seed=3)  # validation and evaluation: the true composer
    assert torch.equal(plain.composer, plain.true_composer)
    assert (MusicDataset(cache, "train", 8, 1, composer_dropout=1.0).composer == 0).all()
    with pytest.raises(ValueError, match="data.composer_dropout"):
        MusicDataset(cache, "train", 8, 1, composer_dropout=1.5)


def composer_model(chained=True, velocity_bins=4, seed=0, **extra):
    torch.manual_seed(seed)
    vocab = seed_vocab(velocity_bins)
    vocab = type(vocab)(vocab.step_bins, vocab.dur_bins, velocity_bins, name="seed", composers=tuple(NAMES))
    model = build_model(ModelConfig(composers=True, chained=chained, **{**TINY, "layers": 2, "emb_vel": 4, **extra}), vocab, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)  # the composer vectors start at zero; make every part count here
    return model.eval(), vocab


@pytest.mark.parametrize("chained,extra", [(True, {}), (False, {}), (True, dict(interval_emb=4, chain_all=True))])
def test_numpy_stepper_matches_the_model_with_a_composer(chained, extra):
    model, vocab = composer_model(chained, **extra)
    rng = np.random.default_rng(0)
    seq = np.stack([rng.integers(0, s, (3, 10)) for s in vocab.sizes], -1)  # (B, T, F)
    for c in (0, 3):
        comp = torch.full((3,), c)
        with torch.no_grad():
            x = torch.as_tensor(seq)
            ref = model(x[:, :-1], next_pitch=x[:, 1:, 0], next_fields=x[:, 1:, 1:], composer=comp)
        stepper = NumpyStepper(model, c)
        state = stepper.zero_state(3)
        for t in range(9):
            h, state = stepper.step(seq[:, t], state)
            for f, lg in enumerate(stepper.heads(h, seq[:, t + 1, 0], seq[:, t + 1, 1:])):
                np.testing.assert_allclose(lg, ref[f][:, t].numpy(), atol=1e-4)
    with torch.no_grad():  # the composer does change the logits
        a = model(torch.as_tensor(seq), composer=torch.zeros(3, dtype=torch.long))[0]
        b = model(torch.as_tensor(seq), composer=torch.full((3,), 2))[0]
    assert (a - b).abs().max() > 1e-2


def test_fast_and_torch_paths_agree_for_a_composer():
    model, vocab = composer_model(interval_emb=4, chain_all=True)
    fast = generate(model, vocab, 12, batch=2, seed=1, top_k=1, composer="johann")
    slow = generate(model, vocab, 12, batch=2, seed=1, top_k=1, composer=3, fast=False)
    np.testing.assert_array_equal(fast, slow)
    settings = SamplingSettings(n_notes=12, seed=1, top_k=1, composer="johann")  # the same, as one settings object
    np.testing.assert_array_equal(generate(model, vocab, settings=settings, batch=2), fast)


def test_the_composer_moves_the_generated_pitch():
    cache = toy_cache()
    torch.manual_seed(0)
    model = build_model(ModelConfig(composers=True, **{**TINY, "layers": 1}), cache.vocab, 16)
    loader = make_loader(cache, "train", 16, 4, 16, shuffle=True, seed=0, composer_dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for epoch in range(20):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            loss, _ = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    mean = {c: generate(model, cache.vocab, 16, batch=16, seed=0, composer=c)[..., 0].mean() for c in ("high", "low", "any")}
    assert mean["high"] > 60 and mean["low"] < 25  # each composer's register, from the same default primer
    assert mean["low"] < mean["any"] < mean["high"]  # "any" mixes the two


def test_composer_names_resolve_or_fail_with_one_line():
    assert resolve_composer("chopin", NAMES) == 1
    assert resolve_composer("FREDERIC", NAMES) == 1  # accents and case do not matter
    assert resolve_composer("beeth", NAMES) == 2  # a unique prefix of a word
    assert resolve_composer("Johann Sebastian Bach", NAMES) == 3
    assert resolve_composer("Any", NAMES) == 0
    with pytest.raises(ValueError, match=r"'bach' is ambiguous: it matches Johann Sebastian Bach, Carl Philipp"):
        resolve_composer("bach", NAMES)
    with pytest.raises(ValueError) as e:
        resolve_composer("Mozart", NAMES)
    msg = str(e.value)
    assert "\n" not in msg and "'Mozart'" in msg and "any, Frédéric Chopin, Ludwig van Beethoven" in msg
    model, vocab = composer_model()
    with pytest.raises(ValueError, match=r"^composer id must be an id in 0\.\.4 \(0 = any\), got 5$"):
        composer_id(model, 5)
    plain = build_model(ModelConfig(**TINY), seed_vocab(), 8)
    assert composer_id(plain, None) == 0 and composer_id(plain, "any") == 0
    with pytest.raises(ValueError, match="trained without composers"):
        generate(plain, seed_vocab(), 4, composer="Chopin")
    with pytest.raises(ValueError, match="corpus names no composer"):
        build_model(ModelConfig(composers=True, **TINY), seed_vocab(), 8)


def test_cli_and_checkpoint_name_the_composers(tmp_path, capsys):
    model, vocab = composer_model()
    cfg = Config().override(**{"model.composers": True, **{f"model.{k}": v for k, v in TINY.items()},
                               "model.layers": 2, "model.emb_vel": 4, "data.window": 8})
    ckpt = save_checkpoint(tmp_path / "c.pt", model, cfg, vocab)
    assert composer_names(ckpt) == NAMES == composer_names(model)
    assert composer_names(build_model(ModelConfig(**TINY), seed_vocab(), 8)) == []
    common = ["generate", "--checkpoint", str(ckpt), "--primer", "none", "--n-notes", "4", "--quiet",
              "--output", str(tmp_path / "o.mid")]
    assert cli.main([*common, "--composer", "Mozart"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: composer 'Mozart'") and "Ludwig van Beethoven" in err
    assert cli.main([*common, "--composer", "chopin"]) == 0
    assert "composer: Frédéric Chopin (id 1 of 4)" in capsys.readouterr().out
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, build_model(ModelConfig(**TINY), seed_vocab(), 8),
                    Config().override(**{f"model.{k}": v for k, v in TINY.items()}), seed_vocab())
    assert cli.main([*common[:2], str(plain), *common[3:], "--composer", "chopin"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trained without composers" in err


def test_training_with_composers_resumes_exactly_and_the_checkpoint_names_them(tmp_path):
    cache = toy_cache(n_pieces=24, splits=["train"] * 20 + ["validation"] * 4)
    cfg = get_config("tiny", **{"model.composers": True, "data.composer_dropout": 0.3, "data.window": 16,
                                "data.stride": 4, "train.batch_size": 8, "train.epochs": 2, "train.max_steps": 0})
    whole = train(cfg, cache, tmp_path / "a", progress=False)

    def crash(history):
        raise KeyboardInterrupt  # as if the runtime died right after epoch 1's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(cfg, cache, tmp_path / "b", progress=False, on_epoch=crash, checkpoint_every_s=0)
    resumed = train(cfg, cache, tmp_path / "b", progress=False)  # the second epoch: the same composer draws
    np.testing.assert_allclose(resumed["val_loss"] + resumed["train_loss"], whole["val_loss"] + whole["train_loss"],
                               rtol=0, atol=1e-6)
    model, vocab, _, _ = load_checkpoint(tmp_path / "b" / CHECKPOINT_LAST)
    assert model.n_composer_ids == 3 and composer_names(model) == ["High", "Low"] == list(vocab.composers)
