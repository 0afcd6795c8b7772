"""Several takes in one batched call, and their numbered files."""

import numpy as np
import pytest

from melody_utils.generate import sample, takes
from helpers import random_tokens, tiny_model


def test_one_take_is_generate_notes_piece_and_several_differ():
    model, vocab = tiny_model(velocity_bins=8)
    primer = random_tokens(vocab, 5)
    knobs = dict(temperature=1.0, top_k=0, top_p=0.95, seed=3)
    (one,) = takes.generate_takes(model, vocab, 1, primer, n_notes=12, **knobs)
    ref = sample.generate_notes(model, vocab, 12, primer, **knobs)
    np.testing.assert_array_equal(one.pitch, ref.pitch)
    np.testing.assert_array_equal(one.start, ref.start)
    three = takes.generate_takes(model, vocab, 3, primer, n_notes=12, **knobs)
    assert [len(t) for t in three] == [12, 12, 12]
    assert len({tuple(t.pitch) + tuple(t.start) for t in three}) == 3


def test_takes_keep_the_primer_when_asked_and_stop_at_seconds():
    model, vocab = tiny_model()
    primer = random_tokens(vocab, 4)
    kept = takes.generate_takes(model, vocab, 2, primer, n_notes=6, keep_primer=True, seed=1)
    head = vocab.decode(primer)
    for take in kept:
        assert len(take) == 10
        np.testing.assert_array_equal(take.pitch[:4], head.pitch)
    timed = takes.generate_takes(model, vocab, 2, primer, seconds=3.0, seed=1)
    assert all(take.start.max() < 3.0 for take in timed)  # the notes starting in the first 3 s of music
    (one,) = takes.generate_takes(model, vocab, 1, primer, seconds=3.0, seed=1)
    np.testing.assert_array_equal(one.pitch, sample.generate_notes(model, vocab, 6, primer, seconds=3.0, seed=1).pitch)


def test_one_batched_call_makes_every_take(monkeypatch):
    model, vocab = tiny_model()
    calls = []
    real = takes.generate
    monkeypatch.setattr(takes, "generate", lambda *a, **k: calls.append(k["batch"]) or real(*a, **k))
    takes.generate_takes(model, vocab, 4, None, n_notes=5, seed=0)
    assert calls == [4]


@pytest.mark.parametrize("n", [0, 33, 2.0, True])
def test_bad_take_counts_are_named(n):
    model, vocab = tiny_model()
    with pytest.raises(ValueError, match="--num-outputs must be an integer between 1 and 32"):
        takes.generate_takes(model, vocab, n, n_notes=5)


def test_take_paths_number_only_several(tmp_path):
    assert takes.take_paths(tmp_path / "a.mid", 1) == [tmp_path / "a.mid"]
    assert takes.take_paths(tmp_path / "a.mid", 3) == [tmp_path / f"a_{i}.mid" for i in (1, 2, 3)]


def test_next_take_path_never_overwrites_an_earlier_take(tmp_path):
    base = tmp_path / "out.midi"
    assert takes.next_take_path(base) == tmp_path / "out_take1.midi"
    (tmp_path / "out_take1.midi").write_bytes(b"x")
    (tmp_path / "out_take7.midi").write_bytes(b"x")
    (tmp_path / "out_take7.wav").write_bytes(b"x")
    (tmp_path / "other_take9.midi").write_bytes(b"x")
    assert takes.next_take_path(base) == tmp_path / "out_take8.midi"
