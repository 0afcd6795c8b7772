import numpy as np
import pytest
import torch

from melody_utils.config import DataConfig
from melody_utils.data.corpus import TokenCache, load_embedded, prepare, split_by_piece
from melody_utils.data import windows as data
from melody_utils.data.windows import MusicDataset, make_loader, window_starts
from melody_utils.music.tokens import seed_vocab
from helpers import write_midi_folder


def test_folder_with_corrupt_and_empty_files_skips_and_names_them(tmp_path):
    folder = tmp_path / "midi"
    good = write_midi_folder(folder, n_good=5)
    (folder / "empty.mid").write_bytes(b"")
    (folder / "corrupt.mid").write_bytes(good[0].read_bytes()[:30])
    cfg = DataConfig(source=str(folder), val_fraction=0.2, test_fraction=0.2)
    cache = prepare(cfg, cache_dir=tmp_path / "cache", progress=False, workers=1)
    assert len(cache) == 5
    skipped = dict(cache.report.skipped)
    assert set(map(lambda p: p.split("/")[-1], skipped)) == {"empty.mid", "corrupt.mid"}
    assert all("empty.mid" in r or "corrupt.mid" in r for r in skipped.values())
    assert "skipped 2 file(s)" in cache.report.summary()


def test_cache_is_keyed_by_settings_and_reloads(tmp_path):
    folder = tmp_path / "midi"
    write_midi_folder(folder, n_good=4)
    a = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "c", progress=False, workers=1)
    b = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "c", progress=False, workers=1)
    assert a.path == b.path
    np.testing.assert_array_equal(a.tokens, b.tokens)
    c = prepare(DataConfig(source=str(folder), bins="seed"), cache_dir=tmp_path / "c", progress=False, workers=1)
    assert c.path != a.path and c.vocab.sizes == (88, 21, 29, DataConfig().velocity_bins)
    assert len(list((tmp_path / "c").glob("*.npz"))) == 2


def test_parallel_parse_equals_serial(tmp_path):
    folder = tmp_path / "midi"
    write_midi_folder(folder, n_good=8)
    a = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "a", progress=False, workers=1)
    b = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "b", progress=False, workers=2)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.offsets, b.offsets)


def test_chorale_corpus_is_real_music_with_a_piece_split(tmp_path):
    notes, meta = load_embedded("chorales")
    assert len(notes) > 300 and sum(map(len, notes)) > 100_000
    composers = {m["composer"] for m in meta}
    assert {"Johann Sebastian Bach", "Wolfgang Amadeus Mozart", "Scott Joplin"} <= composers
    cache = prepare(DataConfig(source="chorales"), cache_dir=tmp_path, progress=False)
    names = {s: {cache.pieces[i]["name"] for i in cache.piece_indices(s)} for s in ("train", "validation", "test")}
    assert names["train"] and names["validation"] and names["test"]
    assert not (names["train"] & names["validation"]) and not (names["train"] & names["test"]) and not (names["validation"] & names["test"])
    assert cache.vocab.step_bins.centers[0] == 0.0
    # a real chorale has chords: many zero steps
    assert (cache.tokens[:, 1] == 0).mean() > 0.3
    reloaded = TokenCache.load(cache.path)  # what the next prepare() reads back
    np.testing.assert_array_equal(reloaded.tokens, cache.tokens)
    np.testing.assert_array_equal(reloaded.offsets, cache.offsets)
    assert reloaded.vocab == cache.vocab and reloaded.pieces == cache.pieces


def test_split_by_piece_fractions_and_seed():
    s = split_by_piece(100, 0.1, 0.2, seed=3)
    assert s.count("validation") == 10 and s.count("test") == 20
    assert s == split_by_piece(100, 0.1, 0.2, seed=3) != split_by_piece(100, 0.1, 0.2, seed=4)
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_piece(10, 0.6, 0.5, 0)


def _cache():
    rng = np.random.default_rng(0)
    v = seed_vocab()
    lengths = [10, 3, 25, 7]
    pieces = [np.stack([rng.integers(0, s, n) for s in v.sizes], 1) for n in lengths]
    return TokenCache.from_pieces(pieces, v, splits=["train", "train", "train", "test"]), pieces


def test_windows_never_cross_pieces_and_cover_every_note():
    cache, pieces = _cache()
    starts = window_starts(cache.offsets, cache.piece_indices("train"), window=4, stride=3)
    for s in starts:
        piece = np.searchsorted(cache.offsets, s, side="right") - 1
        assert s + 5 <= cache.offsets[piece + 1]
    covered = set()
    for s in starts:
        covered.update(range(s, s + 5))
    want = set(range(0, 10)) | set(range(13, 38))  # the 3-note piece is too short
    assert covered == want


def test_dataset_targets_are_shifted_inputs_and_next_is_last_target():
    cache, pieces = _cache()
    ds = MusicDataset(cache, "train", window=4, stride=1)
    b = ds.__getitems__(list(range(len(ds))))
    assert b["inputs"].shape == (len(ds), 4, 3) and b["inputs"].dtype == torch.int64
    torch.testing.assert_close(b["inputs"][:, 1:], b["targets"][:, :-1])
    torch.testing.assert_close(b["next"], b["targets"][:, -1])
    first = torch.from_numpy(pieces[0][:5].astype(np.int64))
    torch.testing.assert_close(ds[0]["inputs"], first[:4])
    torch.testing.assert_close(ds[0]["next"], first[4])


def test_loader_batches_and_reproducible_shuffle():
    cache, _ = _cache()
    a = make_loader(cache, "train", window=4, stride=1, batch_size=5, shuffle=True, seed=1)
    b = make_loader(cache, "train", window=4, stride=1, batch_size=5, shuffle=True, seed=1)
    ba, bb = next(iter(a)), next(iter(b))
    assert ba["inputs"].shape == (5, 4, 3)
    torch.testing.assert_close(ba["inputs"], bb["inputs"])
    a.sampler.set_epoch(1)
    assert not torch.equal(next(iter(a))["inputs"], ba["inputs"])
    assert sum(len(x["next"]) for x in a) == len(a.dataset)


def test_loader_on_split_without_long_pieces_names_the_window():
    cache, _ = _cache()
    with pytest.raises(ValueError, match="data.window"):
        make_loader(cache, "test", window=30, stride=1, batch_size=4, shuffle=False)


def test_transposition_shifts_whole_windows_in_range_and_is_reproducible():
    cache, _ = _cache()
    plain = MusicDataset(cache, "train", window=4, stride=1)
    moved = MusicDataset(cache, "train", window=4, stride=1, transpose=5, seed=1)
    idx = list(range(len(plain)))
    a, b = plain.__getitems__(idx), moved.__getitems__(idx)
    diff = b["inputs"][..., 0] - a["inputs"][..., 0]  # (B, T)
    assert torch.all(diff == diff[:, :1]) and torch.all(b["next"][:, 0] - a["next"][:, 0] == diff[:, 0])
    assert diff.abs().max() <= 5 and (diff != 0).any()
    assert b["inputs"][..., 0].min() >= 0 and b["inputs"][..., 0].max() < cache.vocab.n_pitch
    torch.testing.assert_close(b["inputs"][..., 1:], a["inputs"][..., 1:])  # timing untouched
    again = MusicDataset(cache, "train", window=4, stride=1, transpose=5, seed=1)
    torch.testing.assert_close(again.__getitems__(idx)["inputs"], b["inputs"])
    moved.set_epoch(1)
    assert not torch.equal(moved.__getitems__(idx)["inputs"], b["inputs"])


def test_held_out_piece_falls_back_to_validation_then_says_what_to_do():
    v = seed_vocab()
    piece = np.zeros((5, 3), np.int64)
    assert TokenCache.from_pieces([piece] * 3, v, splits=["train", "test", "validation"]).held_out_piece() == 1
    assert TokenCache.from_pieces([piece] * 2, v, splits=["train", "validation"]).held_out_piece() == 1
    with pytest.raises(ValueError, match="no test or validation piece"):
        TokenCache.from_pieces([piece], v, splits=["train"]).held_out_piece()


def test_epoch_of_a_sample_draws_a_fresh_reproducible_subset_each_epoch():
    order = data.EpochShuffle(1000, seed=1, sample=100)
    assert len(order) == 100
    e0 = list(order)
    assert len(set(e0)) == 100 and all(0 <= i < 1000 for i in e0)
    order.set_epoch(1)
    e1 = list(order)
    assert set(e1) != set(e0)  # another sample
    order.set_epoch(0)
    assert list(order) == e0  # the same (seed, epoch), the same windows: resumable
    assert len(data.EpochShuffle(50, seed=1, sample=100)) == 50  # a sample larger than the set is the set
    with pytest.raises(ValueError, match="train.epoch_windows"):
        data.EpochShuffle(10, seed=1, sample=-1)


def test_the_vocabulary_carries_its_spread_and_an_old_one_of_the_piano_corpus_gets_it_back(tmp_path):
    import dataclasses

    from melody_utils.data.corpus import with_corpus_spread

    cfg = DataConfig(source="piano", max_files=12)
    cache = prepare(cfg, cache_dir=tmp_path, progress=False)
    assert len(cache.vocab.spread) == 3  # step, duration, velocity: stored in the cache ...
    assert TokenCache.load(cache.path).vocab.spread == cache.vocab.spread  # ... and read back
    old = cache.vocab.on_grid()  # as a checkpoint of an earlier version holds it
    restored = with_corpus_spread(old, cfg)
    assert restored == old and len(restored.spread) == 3  # the piano corpus's training pieces, in its bins
    tokens = cache.piece_tokens(0)[:300].astype(np.int64)
    played = restored.decode(tokens, seed=0)
    np.testing.assert_array_equal(restored.encode(played)[1:], tokens[1:])
    assert len(np.unique(played.velocity)) > len(np.unique(restored.decode(tokens).velocity))
    assert with_corpus_spread(old, dataclasses.replace(cfg, source="chorales")).spread == ()  # another corpus: centres
    assert with_corpus_spread(cache.vocab, cfg) is cache.vocab  # its own spread is kept
    chorales = prepare(DataConfig(source="chorales", max_files=12), cache_dir=tmp_path, progress=False, vocab=old)
    assert chorales.vocab == old and chorales.vocab.spread  # a given vocabulary's bins, the corpus's own spread
    assert chorales.vocab.spread != restored.spread


@pytest.fixture(scope="module")
def performed_cache(tmp_path_factory):
    """The first 12 piano pieces with their performed copies (data.perform > 0)."""
    cfg = DataConfig(source="piano", max_files=12, perform=0.5)
    return prepare(cfg, cache_dir=tmp_path_factory.mktemp("performed"), progress=False), cfg


def test_the_cache_holds_performed_copies_note_for_note(performed_cache, tmp_path):
    from melody_utils.data.corpus import PERFORMED_COPIES

    cache, cfg = performed_cache
    assert cache.variants.shape == (PERFORMED_COPIES, *cache.tokens.shape)
    for k in range(PERFORMED_COPIES):
        for i in range(len(cache)):
            a, b = cache.piece_tokens(i), cache.variants[k][cache.offsets[i]:cache.offsets[i + 1]]
            assert sorted(a[:, 0]) == sorted(b[:, 0])  # the same notes ...
        # ... chords spread: some of their notes now come 15 ms or more after the first (step bin 1 and up)
        assert np.mean(cache.variants[k][:, 1] == 0) < 0.9 * np.mean(cache.tokens[:, 1] == 0)
        assert not np.array_equal(cache.variants[k][:, 3], cache.tokens[:, 3])  # ... other velocities
    assert not np.array_equal(cache.variants[0], cache.variants[1])
    again = prepare(DataConfig(source="piano", max_files=12, perform=0.2), cache_dir=cache.path.parent, progress=False)
    assert again.path == cache.path and np.array_equal(again.variants, cache.variants)  # the share needs no new cache
    plain = prepare(DataConfig(source="piano", max_files=12), cache_dir=cache.path.parent, progress=False)
    assert plain.path != cache.path and plain.variants is None and np.array_equal(plain.tokens, cache.tokens)


def test_windows_are_read_from_performed_copies_in_their_share_reproducibly(performed_cache):
    cache, _ = performed_cache
    plain = MusicDataset(cache, "train", window=32, stride=16)
    mixed = MusicDataset(cache, "train", window=32, stride=16, perform=0.5, transpose=6, seed=3)
    idx = list(range(len(plain)))
    a, b = plain.__getitems__(idx), mixed.__getitems__(idx)
    version = mixed.version.numpy() // len(cache.tokens)
    assert 0.4 < np.mean(version > 0) < 0.6 and set(np.unique(version)) == {0, 1, 2}
    i = int(np.flatnonzero(version == 2)[0])
    s = mixed.starts[i]
    expected = cache.variants[1][s:s + 33].astype(np.int64)
    expected[:, 0] += int(mixed.shifts[i])
    np.testing.assert_array_equal(b["inputs"][i].numpy(), expected[:-1])  # the copy's notes at the same place
    j = int(np.flatnonzero(version == 0)[0])
    torch.testing.assert_close(b["inputs"][j, :, 1:], a["inputs"][j, :, 1:])  # the piece itself
    pitch = b["inputs"][..., 0]
    assert pitch.min() >= 0 and pitch.max() < cache.vocab.n_pitch  # transposed in range in every version
    again = MusicDataset(cache, "train", window=32, stride=16, perform=0.5, transpose=6, seed=3)
    torch.testing.assert_close(again.__getitems__(idx)["inputs"], b["inputs"])
    mixed.set_epoch(1)
    assert not torch.equal(mixed.version, again.version)  # redrawn every epoch
    with pytest.raises(ValueError, match="data.perform must be in"):
        MusicDataset(cache, "train", window=32, stride=16, perform=1.5)
    no_copies = TokenCache(cache.tokens, cache.offsets, cache.pieces, cache.vocab)
    with pytest.raises(ValueError, match="holds none; prepare it with the same data.perform"):
        MusicDataset(no_copies, "train", window=32, stride=16, perform=0.5)
