"""Composer ids: which composer a piece is by, as a model input, and names back from a user.

A corpus names each piece's composer (the piano corpus's metadata, MAESTRO's
``canonical_composer``, a folder's ``metadata.csv`` composer column; "" when it does not say).
The composers of the training pieces, sorted, are the vocabulary's ``composers``; composer id
``i + 1`` is ``vocab.composers[i]`` and id 0 is "any": unknown, unnamed, or a composer only the
held-out pieces have. A model trained with ``model.composers`` on (see
:class:`melody_utils.model.lstm.CausalLSTM`) reads one id per window; composer dropout
(``data.composer_dropout``) also teaches it id 0, the unconditional distribution, so generation
can ask for a composer or for "any".

:func:`melody_utils.model.checkpoint.composer_names` lists a model's or a checkpoint's composers (a
notebook dropdown). Users name a composer in words (:func:`resolve_composer`): case and accents do not matter, and a
unique prefix of the name or of any of its words is enough ("chopin", "Beeth", "Mozart").
"""

from __future__ import annotations

import dataclasses
import unicodedata

import numpy as np

from ..checks import check_number
from ..music.tokens import Vocab

ANY = "any"  # composer id 0: no composer asked for (the unconditional distribution)
HOW_TO_NAME = "case-insensitive; a unique prefix of a name or surname is enough"


def _norm(text: str) -> str:
    """Case- and accent-free form for matching: "Frédéric Chopin" -> "frederic chopin"."""
    s = unicodedata.normalize("NFKD", str(text).strip())
    return "".join(c for c in s if not unicodedata.combining(c)).casefold()


def training_composers(pieces: list[dict]) -> tuple[str, ...]:
    """Sorted distinct composer names of the training pieces (held-out-only composers map to "any")."""
    return tuple(sorted({p.get("composer", "").strip() for p in pieces if p.get("split") == "train"} - {""}))


def with_composers(vocab: Vocab, pieces: list[dict]) -> Vocab:
    """``vocab`` carrying the composer names of ``pieces``'s training split."""
    return dataclasses.replace(vocab, composers=training_composers(pieces))


def piece_composer_ids(pieces: list[dict], names) -> np.ndarray:
    """(P,) int64 composer id of each piece: 1 + its index in ``names``, 0 ("any") when not there."""
    index = {n: i + 1 for i, n in enumerate(names)}
    return np.array([index.get(p.get("composer", "").strip(), 0) for p in pieces], dtype=np.int64)


def resolve_composer(query: str, names) -> int:
    """A composer as a user names it -> its id (0 for "any"); ValueError listing ``names`` otherwise."""
    q = _norm(query)
    if q == ANY:
        return 0
    known = [_norm(n) for n in names]
    if q in known:
        return known.index(q) + 1
    hits = [i for i, n in enumerate(known) if q and (n.startswith(q) or any(w.startswith(q) for w in n.split()))]
    if len(hits) == 1:
        return hits[0] + 1
    choices = ", ".join([ANY, *names])
    if hits:
        raise ValueError(f"composer {query!r} is ambiguous: it matches {', '.join(names[i] for i in hits)}; "
                         f"give more of the name ({HOW_TO_NAME})")
    raise ValueError(f"composer {query!r} is not one the model knows; choose one of: {choices} ({HOW_TO_NAME})")


def composer_id(model, composer) -> int:
    """``composer`` (None, "any", a name, or an id) -> the id ``model`` reads; ValueError when it cannot."""
    if composer is None:
        return 0
    n_ids = getattr(model, "n_composer_ids", 0)
    if not n_ids:
        if isinstance(composer, str) and _norm(composer) == ANY:
            return 0
        raise ValueError(f"composer {composer!r}: this model was trained without composers; leave the composer out "
                         f"(--composer), or train with --set model.composers=true on a corpus that names them")
    if isinstance(composer, str):
        return resolve_composer(composer, list(model.composer_names))
    return check_number("composer id", composer, f"an id in 0..{n_ids - 1} (0 = {ANY})", 0, n_ids - 1, integer=True)


def describe_composer(query: str, names) -> str:
    """The composer a name resolves to, in words: "Chopin (id 3 of 25)", "any"."""
    i = resolve_composer(query, names)
    return f"{names[i - 1]} (id {i} of {len(names)})" if i else ANY
