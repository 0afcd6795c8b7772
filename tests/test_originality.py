"""The originality index: copied passages are found (transposed too), original music is not."""

import numpy as np
import pytest

from melody_utils.evaluate import originality
from melody_utils.data.corpus import TokenCache
from melody_utils.evaluate.originality import NGRAM, OriginalityIndex, describe
from melody_utils.music.tokens import seed_vocab

VOCAB = seed_vocab()


def random_tokens(n, seed, pitch=(20, 60)):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(*pitch, n), rng.integers(0, 21, n), rng.integers(0, 29, n)], axis=1)


@pytest.fixture
def cache(tmp_path):
    pieces = [random_tokens(300, seed) for seed in range(6)]
    c = TokenCache.from_pieces(pieces, VOCAB, splits=["train"] * 4 + ["validation", "test"])
    c.save(tmp_path / "corpus.npz")
    return c


def test_a_planted_passage_is_found_with_its_source_and_transposition(cache):
    index = OriginalityIndex.build(cache)
    piece = random_tokens(200, seed=100)
    assert index.check(piece)["longest_copy"] == 0 and index.check(piece)["copied_share"] == 0.0  # random notes
    planted = piece.copy()
    planted[60:100] = cache.piece_tokens(2)[150:190]
    planted[60:100, 0] += 5  # transposed up a fourth
    planted[60, 1] = 7  # the passage's first step differs: not part of what is compared
    r = index.check(planted)
    assert r["longest_copy"] == 40 and r["source"] == "piece2" and r["source_note"] == 150 and r["transposition"] == 5
    assert r["copied_share"] == pytest.approx((40 - NGRAM + 1) / (200 - NGRAM + 1))
    assert "40 notes" in describe(r) and "piece2" in describe(r) and "transposed +5" in describe(r)


def test_only_the_training_split_and_no_sequence_across_pieces(cache):
    index = OriginalityIndex.build(cache)
    assert index.check(cache.piece_tokens(5)[:50])["longest_copy"] == 0  # a test piece is not training data
    seam = np.concatenate([cache.piece_tokens(0)[-4:], cache.piece_tokens(1)[:4]])  # spans two pieces
    assert index.check(seam)["copied_share"] == 0.0
    assert index.check(cache.piece_tokens(3))["copied_share"] == 1.0


def test_short_pieces_and_bad_shapes(cache):
    index = OriginalityIndex.build(cache)
    r = index.check(cache.piece_tokens(0)[:NGRAM - 1])
    assert r["longest_copy"] == 0 and r["copied_share"] == 0.0 and "no 8-note sequence" in describe(r)
    with pytest.raises(ValueError, match="shape"):
        index.check(np.zeros(5))


def test_slow_builds_are_saved_beside_the_cache_and_reloaded(cache, monkeypatch):
    monkeypatch.setattr(originality, "CACHE_AFTER_S", -1.0)  # every build counts as slow
    first = OriginalityIndex.for_cache(cache)
    saved = cache.path.with_suffix(".originality8.npz")
    assert saved.is_file() and not list(saved.parent.glob("*.tmp*"))

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt instead of reloading")

    monkeypatch.setattr(OriginalityIndex, "build", classmethod(no_build))
    again = OriginalityIndex.for_cache(cache)
    assert np.array_equal(again.hashes, first.hashes) and np.array_equal(again.first, first.first)
    planted = random_tokens(100, seed=7)
    planted[10:30] = cache.piece_tokens(1)[0:20]
    assert again.check(planted)["longest_copy"] == 20 and again.check(planted)["source"] == "piece1"


def test_a_changed_cache_rebuilds_its_index(cache, monkeypatch):
    monkeypatch.setattr(originality, "CACHE_AFTER_S", -1.0)
    OriginalityIndex.for_cache(cache)
    changed = TokenCache.from_pieces([random_tokens(300, 50)], VOCAB)
    changed.save(cache.path)  # same path, new content
    index = OriginalityIndex.for_cache(changed)
    assert index.check(changed.piece_tokens(0))["copied_share"] == 1.0
    assert index.check(cache.piece_tokens(0))["copied_share"] == 0.0
