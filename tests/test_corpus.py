"""Tests of melody_utils.data.corpus: parsing a folder (bad files skipped and named), the token cache
keyed by its settings, splits by piece, the vocabulary's spread, and performed copies."""

import numpy as np
import pytest

from melody_utils.config import DataConfig
from melody_utils.data.corpus import TokenCache, load_embedded, prepare, split_by_piece
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


def test_held_out_piece_falls_back_to_validation_then_says_what_to_do():
    v = seed_vocab()
    piece = np.zeros((5, 3), np.int64)
    assert TokenCache.from_pieces([piece] * 3, v, splits=["train", "test", "validation"]).held_out_piece() == 1
    assert TokenCache.from_pieces([piece] * 2, v, splits=["train", "validation"]).held_out_piece() == 1
    with pytest.raises(ValueError, match="no test or validation piece"):
        TokenCache.from_pieces([piece], v, splits=["train"]).held_out_piece()


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
