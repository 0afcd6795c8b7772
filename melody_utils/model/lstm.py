"""The models: the seed's two window -> next-note LSTMs and the stateful causal LSTM.

Every model reads LongTensor tokens ``(B, T, F)`` (columns as in :mod:`melody_utils.music.tokens`:
pitch, step, duration[, velocity]) and has

- ``.causal``: True when it learns the next note at every position (``inputs -> targets``)
  and can carry its LSTM state from note to note; False for the seed-style models that read a
  whole window and predict only the note after it (``inputs -> next``);
- ``.loss(batch) -> (total, {field: nats})``: ``total`` is the sum of the per-head mean
  cross-entropies (nats per note), the dict holds each head's value as a float.

Models:

- :class:`MusicLSTM` (``arch="baseline"``): the seed's baseline. Embeddings -> bidirectional LSTM
  -> dropout -> last time step -> three linear heads. ~1.0 M parameters at seed sizes.
- :class:`MusicLSTM_Advanced` (``arch="advanced"``): the seed's flagship. Embeddings -> 3-layer
  bidirectional LSTM -> multi-head self-attention with residual + LayerNorm -> mean over
  positions -> three heads. ~20.6 M parameters at seed sizes.
- :class:`CausalLSTM` (``arch="causal"``, the default): unidirectional LSTM over the concatenated
  field embeddings (optionally also the interval to the previous note's pitch), a next-note
  prediction at every position, optionally "chained" heads: step, duration (and velocity) see
  the pitch of the note being predicted (and, with ``chain_all``, every field chosen before them).

Window models ignore a velocity column (the seed did not model velocity); the causal model adds
a velocity head when the vocabulary has ``velocity_bins > 0``.

Composer conditioning (config ``model.composers``, causal model only): the model's ``n_composer_ids`` is the
number of composer ids (``vocab.composers`` plus id 0, "any"; see :mod:`melody_utils.data.composers`),
0 when off; batches carry a ``composer`` id per window. The window models take no composer
(``n_composer_ids = 0``): they re-read a fixed window and are kept as the seed's baselines.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config, ModelConfig
from ..music.tokens import Vocab

ARCHS = ("causal", "advanced", "baseline")
INTERVAL_MAX = 24  # interval inputs: semitones to the previous note, clipped to +-this (two octaves)
NO_INTERVAL = 2 * INTERVAL_MAX + 1  # the interval id of a note with no previous note (a piece's first)
SEED_FIELDS = 3  # pitch, step, duration: what the seed's window models read and predict

# The seed notebook's sizes, for comparing with it (``seed_model_config``).
SEED_SIZES = {
    "baseline": dict(emb_pitch=64, emb_step=64, emb_dur=64, hidden=256, layers=1, dropout=0.3),
    "advanced": dict(emb_pitch=128, emb_step=128, emb_dur=128, hidden=512, layers=3, dropout=0.3, attn_heads=4),
}


def seed_model_config(arch: str) -> ModelConfig:
    """ModelConfig with the seed notebook's sizes for ``arch`` in {"baseline", "advanced"}."""
    if arch not in SEED_SIZES:
        raise ValueError(f"arch {arch!r} has no seed sizes; choose one of {sorted(SEED_SIZES)}")
    return ModelConfig(arch=arch, chained=False, **SEED_SIZES[arch])


def _embeddings(vocab: Vocab, widths: tuple[int, ...]) -> nn.ModuleList:
    """One embedding table per token field (pitch, step, duration[, velocity])."""
    return nn.ModuleList(nn.Embedding(n, w) for n, w in zip(vocab.sizes, widths))


def _embed(embs: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """(B, T, F) ids -> (B, T, sum of widths): the field embeddings side by side."""
    return torch.cat([emb(x[..., i]) for i, emb in enumerate(embs)], dim=-1)


def _check_tokens(x: torch.Tensor, n_fields: int, name: str = "inputs") -> None:
    if x.dim() != 3 or x.shape[-1] < n_fields:
        raise ValueError(f"{name} must be a LongTensor (B, T, F>={n_fields}) of token ids, got shape {tuple(x.shape)}")


def _cross_entropies(logits: list[torch.Tensor], targets: torch.Tensor, fields) -> tuple[torch.Tensor, dict]:
    """Sum of per-head mean cross-entropies. logits[i]: (..., V_i); targets: (..., F)."""
    parts = {}
    total = 0.0
    for i, (name, lg) in enumerate(zip(fields, logits)):
        ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float(), targets[..., i].reshape(-1))
        parts[name] = ce
        total = total + ce
    return total, {k: float(v.detach()) for k, v in parts.items()}


class _WindowModel(nn.Module):
    """Shared plumbing of the seed-style models: window (B, T, F) -> logits of the next note."""

    causal = False
    composers, composer_names = 0, ()  # no composer input (see the module docstring)

    def __init__(self, vocab: Vocab, emb: tuple[int, int, int], hidden: int, layers: int, dropout: float, window: int):
        super().__init__()
        self.sizes = vocab.sizes[:SEED_FIELDS]
        self.fields = vocab.fields[:SEED_FIELDS]
        self.window = window  # notes per input window (used by generation)
        self.embs = _embeddings(vocab, emb)
        self.lstm = nn.LSTM(sum(emb), hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(2 * hidden, n) for n in self.sizes)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        dev = next(self.parameters()).device
        x = batch["inputs"].to(dev, non_blocking=True)  # (B, T, F)
        y = batch["next"].to(dev, non_blocking=True)  # (B, F)
        return _cross_entropies(self(x), y, self.fields)


class MusicLSTM(_WindowModel):
    """The seed's baseline: embeddings -> bidirectional LSTM -> last step -> three heads."""

    def __init__(self, vocab: Vocab, emb: tuple[int, int, int] = (64, 64, 64), hidden: int = 256,
                 layers: int = 1, dropout: float = 0.3, window: int = 50):
        super().__init__(vocab, emb, hidden, layers, dropout, window)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_tokens(x, SEED_FIELDS)
        e = _embed(self.embs, x)  # (B, T, E)
        out, _ = self.lstm(e)  # (B, T, 2H)
        last = self.drop(out[:, -1])  # (B, 2H): the seed read the last time step of both directions
        return [head(last) for head in self.heads]  # [(B, V_f)]


class MusicLSTM_Advanced(_WindowModel):
    """The seed's flagship: embeddings -> deep biLSTM -> self-attention + residual + LayerNorm -> mean."""

    def __init__(self, vocab: Vocab, emb: tuple[int, int, int] = (128, 128, 128), hidden: int = 512,
                 layers: int = 3, dropout: float = 0.3, attn_heads: int = 4, window: int = 50):
        if attn_heads < 1 or (2 * hidden) % attn_heads:
            raise ValueError(f"model.attn_heads={attn_heads} must be >= 1 and divide 2 * model.hidden = {2 * hidden}")
        super().__init__(vocab, emb, hidden, layers, dropout, window)
        self.attn = nn.MultiheadAttention(2 * hidden, attn_heads, batch_first=True)
        self.norm = nn.LayerNorm(2 * hidden)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_tokens(x, SEED_FIELDS)
        e = _embed(self.embs, x)  # (B, T, E)
        out, _ = self.lstm(e)  # (B, T, 2H)
        a, _ = self.attn(out, out, out, need_weights=False)  # (B, T, 2H), no mask: every position sees all
        out = self.norm(out + a)  # (B, T, 2H)
        pooled = self.drop(out.mean(dim=1))  # (B, 2H)
        return [head(pooled) for head in self.heads]  # [(B, V_f)]


def interval_ids(pitch: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
    """(B, T) pitch ids and (B,) the pitch before them (None, or < 0 in a row: none) -> (B, T) interval ids."""
    before = torch.cat([pitch[:, :1] if prev is None else prev[:, None], pitch[:, :-1]], dim=1)  # (B, T)
    ids = (pitch - before).clamp(-INTERVAL_MAX, INTERVAL_MAX) + INTERVAL_MAX
    if prev is None:
        ids[:, 0] = NO_INTERVAL
    else:
        ids[:, 0] = torch.where(prev < 0, NO_INTERVAL, ids[:, 0])
    return ids


def reset_rows(state: tuple, reset: torch.Tensor) -> tuple:
    """A causal model's state ((L, B, H), (L, B, H)[, (B,) last pitch]) with the rows where ``reset``
    (B,) bool holds set to a piece's start: zero h and c, no previous pitch (-1, see :func:`interval_ids`)."""
    keep = ~reset  # (B,)
    h, c = (s * keep[None, :, None].to(s.dtype) for s in state[:2])
    return (h, c) if len(state) == 2 else (h, c, torch.where(keep, state[2], -1))


class CausalLSTM(nn.Module):
    """Unidirectional LSTM language model over notes, predicting the next note at every position.

    Input at position t: the field embeddings of note t side by side. Output at t: logits of
    note t+1. With ``chained=True`` the pitch head reads the LSTM output ``h`` and the other
    heads read ``relu(W [h; emb_out(pitch)])``, the pitch being that of the predicted note (the
    target in training, the sampled one in generation), so e.g. a low bass note can get a longer
    duration than a high one at the same position. With ``chained=False`` all heads read ``h``
    and are sampled independently, as in the seed. With ``chain_all`` (chained models) each of
    the other heads also sees the fields chosen before it: duration sees pitch and step, velocity
    sees pitch, step and duration (each earlier field adds an embedding to the heads' hidden
    pre-activation). ``interval_emb`` > 0 adds an embedding of the interval to the previous note's
    pitch (:func:`interval_ids`) to every input; the state then carries the last pitch.

    With ``composers`` (names; id 0 = "any"), a learned vector per composer id is added to the
    note embeddings at every step, not only to the initial state: generation carries the state
    for thousands of notes past the training window, and an input seen at every step keeps the
    composer present however long the piece. The vectors start at zero (the unconditional model).
    """

    causal = True

    def __init__(self, vocab: Vocab, emb: tuple[int, ...] = (64, 32, 32, 16), hidden: int = 256,
                 layers: int = 2, dropout: float = 0.1, chained: bool = True, window: int = 64,
                 interval_emb: int = 0, chain_all: bool = False, composers=()):
        super().__init__()
        self.sizes = vocab.sizes  # ids per field, 3 or 4 fields
        self.fields = vocab.fields
        self.n_fields = len(self.sizes)
        self.hidden, self.layers, self.chained = hidden, layers, chained
        self.chain_all = chained and chain_all
        self.window = window  # training window; generation carries the state past it
        self.embs = _embeddings(vocab, emb[: self.n_fields])
        self.interval = nn.Embedding(NO_INTERVAL + 1, interval_emb) if interval_emb else None
        self.lstm = nn.LSTM(sum(emb[: self.n_fields]) + interval_emb, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.pitch_head = nn.Linear(hidden, self.sizes[0])
        if chained:
            self.pitch_out = nn.Embedding(self.sizes[0], emb[0])  # the chosen pitch, as the other heads see it
            self.cond = nn.Linear(hidden + emb[0], hidden)
        if self.chain_all:  # field k (step, duration, ...) as the heads after it see it
            self.chain_embs = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes[1:-1])
        self.field_heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes[1:])  # step, duration[, velocity]
        self.composer_names = tuple(composers)
        self.n_composer_ids = len(self.composer_names) + 1 if self.composer_names else 0  # ids, 0 = "any"; 0 = off
        self.composer = nn.Embedding(self.n_composer_ids, sum(emb[: self.n_fields])) if self.n_composer_ids else None
        if self.composer is not None:
            nn.init.zeros_(self.composer.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Checkpoints written before the heads after the pitch were named ``field_heads`` load too."""
        old = prefix + "rest_heads."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[prefix + "field_heads." + key[len(old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- pieces, also used by generation ----
    def encode(self, x: torch.Tensor, state=None, composer: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple]:
        """(B, T, F) ids -> LSTM outputs (B, T, H) and the final state ((L, B, H), (L, B, H)[, (B,) last pitch]).

        ``composer``: (B,) composer ids (None = 0, "any"); ignored by a model without composers."""
        _check_tokens(x, self.n_fields)
        e = _embed(self.embs, x[..., : self.n_fields])  # (B, T, E)
        if self.composer is not None:  # on the note embeddings, before the interval's columns
            c = torch.zeros(len(x), dtype=torch.long, device=x.device) if composer is None else composer
            e = e + self.composer(c)[:, None]  # (B, T, E): the same composer at every step
        if self.interval is not None:
            prev = None if state is None else state[2]
            e = torch.cat([e, self.interval(interval_ids(x[..., 0], prev))], dim=-1)  # (B, T, E + e_int)
            state = None if state is None else state[:2]
        out, state = self.lstm(e, state)  # (B, T, H)
        if self.interval is not None:
            state = (*state, x[:, -1, 0])
        return self.drop(out), state

    def heads(self, h: torch.Tensor, next_pitch: torch.Tensor | None = None,
              next_fields: torch.Tensor | None = None) -> list[torch.Tensor]:
        """LSTM outputs (..., H) -> logits per field [(..., V_f)].

        For chained models the non-pitch heads are conditioned on ``next_pitch`` (..., the pitch
        id of the note being predicted); when None, the most likely pitch is used. With
        ``chain_all`` the head of field f also sees ``next_fields[..., :f-1]`` (the ids of the fields
        between pitch and f; when None, the most likely ones).
        """
        pitch_logits = self.pitch_head(h)  # (..., V_pitch)
        if not self.chained:
            return [pitch_logits] + [head(h) for head in self.field_heads]
        if next_pitch is None:
            next_pitch = pitch_logits.argmax(-1)
        pre = self.cond(torch.cat([h, self.pitch_out(next_pitch)], dim=-1))  # (..., H)
        out = [pitch_logits]
        for k, head in enumerate(self.field_heads):
            out.append(head(F.relu(pre)))
            if self.chain_all and k < len(self.chain_embs):  # the fields after k see the id chosen for k
                pre = pre + self.chain_embs[k](out[-1].argmax(-1) if next_fields is None else next_fields[..., k])
        return out

    def forward(self, x: torch.Tensor, next_pitch: torch.Tensor | None = None, state=None,
                next_fields: torch.Tensor | None = None, composer: torch.Tensor | None = None) -> list[torch.Tensor]:
        """(B, T, F) ids -> logits of the next note at every position [(B, T, V_f)]."""
        h, _ = self.encode(x, state, composer)
        return self.heads(h, next_pitch, next_fields)

    def step(self, x_t: torch.Tensor, state=None, next_pitch: torch.Tensor | None = None,
             composer: torch.Tensor | None = None):
        """One note (B, F) -> (logits [(B, V_f)], new state): carries the LSTM state, O(1) per note."""
        h, state = self.encode(x_t[:, None], state, composer)  # (B, 1, H)
        p = None if next_pitch is None else next_pitch[:, None]  # (B, 1)
        return [lg[:, 0] for lg in self.heads(h, p)], state

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        total, heads, _ = self.stream_loss(batch)
        return total, heads

    def stream_loss(self, batch: dict, state=None) -> tuple[torch.Tensor, dict, tuple]:
        """:meth:`loss`, starting from ``state`` (the final state of the batch before, carried by
        ``train.carry_state``; see :mod:`melody_utils.data.streams`), zeroed in the rows where
        ``batch["reset"]`` (B,) marks a new piece; also returns this batch's final state, detached
        (truncated back-propagation: the gradient stops at the batch boundary)."""
        dev = next(self.parameters()).device
        x = batch["inputs"].to(dev, non_blocking=True)  # (B, T, F)
        y = batch["targets"].to(dev, non_blocking=True)  # (B, T, F)
        c = batch.get("composer")
        c = None if c is None else c.to(dev, non_blocking=True)  # (B,)
        if state is not None:
            state = reset_rows(state, batch["reset"].to(dev, non_blocking=True))
        h, state = self.encode(x, state, c)
        # teacher forcing: the heads see the true next note
        logits = self.heads(h, next_pitch=y[..., 0], next_fields=y[..., 1:])
        total, heads = _cross_entropies(logits, y, self.fields)
        return total, heads, tuple(s.detach() for s in state)


def build_model(model_cfg: ModelConfig, vocab: Vocab, window: int) -> nn.Module:
    """The model named by ``model_cfg.arch``, sized by ``model_cfg``; ``window`` = input notes per window."""
    c = model_cfg
    if c.hidden < 1 or c.layers < 1:
        raise ValueError(f"model.hidden ({c.hidden}) and model.layers ({c.layers}) must be >= 1")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"model.dropout={c.dropout} must be in [0, 1)")
    if c.composers and (c.arch != "causal" or not vocab.composers):
        why = f"model.arch={c.arch!r} takes no composer" if c.arch != "causal" else "the corpus names no composer"
        raise ValueError(f"model.composers=true: {why}; use the causal model on a corpus that names composers "
                         f"(the piano corpus, MAESTRO, a metadata.csv composer column), or set model.composers=false")
    if c.arch == "causal":
        emb = (c.emb_pitch, c.emb_step, c.emb_dur, c.emb_vel)
        return CausalLSTM(vocab, emb, c.hidden, c.layers, c.dropout, c.chained, window, c.interval_emb, c.chain_all,
                          vocab.composers if c.composers else ())
    emb = (c.emb_pitch, c.emb_step, c.emb_dur)
    if c.arch == "advanced":
        return MusicLSTM_Advanced(vocab, emb, c.hidden, c.layers, c.dropout, c.attn_heads, window)
    if c.arch == "baseline":
        return MusicLSTM(vocab, emb, c.hidden, c.layers, c.dropout, window)
    raise ValueError(f"unknown model.arch {c.arch!r}; choose one of {ARCHS}")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside wrappers that keep it in ``.module`` (DistributedDataParallel, the
    training loss adapter); ``model`` itself when not wrapped."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


WINDOW_ARCHS = ("baseline", "advanced")  # the seed's window->next models


def build_from_config(cfg: Config, vocab: Vocab) -> nn.Module:
    """The model ``cfg.model`` describes, for ``vocab``; window models see ``cfg.data.seed_window`` notes."""
    window = cfg.data.seed_window if cfg.model.arch in WINDOW_ARCHS else cfg.data.window
    return build_model(cfg.model, vocab, window)
