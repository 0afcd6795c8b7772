"""A CausalLSTM's inference in numpy: one note at a time with carried state, for fast CPU generation.

:class:`NumpyStepper` runs the LSTM cell by hand in numpy on weights exported from the model, with
each field's embedding already multiplied into the first layer's input weights (one table lookup
per field replaces the embedding and the first input projection). Per-call overhead, not
arithmetic, limits small batches, so this is several times faster than calling ``nn.LSTM`` note
by note; its logits match the model's (:meth:`NumpyStepper.heads`). :mod:`melody_utils.generate.sample`
drives it.
"""

from __future__ import annotations

import numpy as np
import torch

from .lstm import INTERVAL_MAX, NO_INTERVAL


class NumpyStepper:
    """A CausalLSTM's inference in numpy (float32), one note at a time with carried state.

    Same maths as the model in eval mode (dropout off); exported once from its weights, for one
    ``composer`` id (models with composers; 0 = "any").
    ``state`` is ``(h, c, last)``: two lists of ``layers`` arrays (B, H) and the last pitch ids
    (B,) fed (None before the first note; read by models with interval inputs).
    """

    def __init__(self, model, composer: int = 0):
        sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        as_np = lambda t: np.ascontiguousarray(t.numpy())  # noqa: E731
        as_np_t = lambda t: t.t().contiguous().numpy()  # transposed (torch transposes large matrices faster)  # noqa: E731
        H = model.hidden
        self.hidden, self.layers, self.chained, self.chain_all = H, model.layers, model.chained, model.chain_all
        self.sizes = tuple(model.sizes)
        # layer 0: gates = sum_f table_f[id_f] + h0 @ w_hh0, table_f = emb_f @ W_ih0[:, cols_f].T  (V_f, 4H)
        w_ih0 = sd["lstm.weight_ih_l0"]  # (4H, E)
        self.tables, col = [], 0
        for i in range(len(self.sizes)):
            emb = sd[f"embs.{i}.weight"]  # (V_f, e_f)
            self.tables.append(as_np(emb @ w_ih0[:, col: col + emb.shape[1]].T))
            col += emb.shape[1]
        self.interval_table = as_np(sd["interval.weight"] @ w_ih0[:, col:].T) if model.interval is not None else None
        self.tables[0] += as_np(sd["lstm.bias_ih_l0"] + sd["lstm.bias_hh_l0"])  # both biases ride on the pitch table
        if model.n_composer_ids:  # so does the composer's vector, added to the note embeddings at every step
            self.tables[0] += as_np(sd["composer.weight"][composer] @ w_ih0[:, : sd["composer.weight"].shape[1]].T)
        self.w_hh0 = as_np_t(sd["lstm.weight_hh_l0"])  # (H, 4H)
        # layers >= 1: gates = [h_below, h_l] @ w_l + b_l
        self.w = [as_np_t(torch.cat([sd[f"lstm.weight_ih_l{l}"], sd[f"lstm.weight_hh_l{l}"]], 1))
                  for l in range(1, self.layers)]  # (2H, 4H)
        self.b = [as_np(sd[f"lstm.bias_ih_l{l}"] + sd[f"lstm.bias_hh_l{l}"]) for l in range(1, self.layers)]  # (4H,)
        # heads: pitch from h; the others, padded side by side to one matrix, from z
        self.w_pitch = as_np_t(sd["pitch_head.weight"])  # (H, V_pitch)
        self.b_pitch = as_np(sd["pitch_head.bias"])
        later = self.sizes[1:]  # the fields after the pitch
        self.v_max = max(later)
        self.w_fields = np.zeros((H, len(later) * self.v_max), np.float32)  # (H, K * V_max)
        self.b_fields = np.full(len(later) * self.v_max, -np.inf, np.float32)  # padding ids get -inf logits
        for k, n in enumerate(later):
            self.w_fields[:, k * self.v_max: k * self.v_max + n] = as_np_t(sd[f"field_heads.{k}.weight"])
            self.b_fields[k * self.v_max: k * self.v_max + n] = as_np(sd[f"field_heads.{k}.bias"])
        if self.chained:  # z = relu(h @ w_cond + cond_table[pitch]), cond_table folds pitch_out and the bias
            w_cond = sd["cond.weight"]  # (H, H + e_pitch)
            self.w_cond = as_np_t(w_cond[:, :H])  # (H, H)
            self.cond_table = as_np(sd["pitch_out.weight"] @ w_cond[:, H:].T + sd["cond.bias"])  # (V_pitch, H)
        self.chain_tables = [as_np(sd[f"chain_embs.{k}.weight"]) for k in range(len(later) - 1)] if self.chain_all else []
        # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5: halving the i, f, o gate columns here lets one tanh
        # over all four gates serve both nonlinearities (fewer passes over the gates per step)
        half = np.ones(4 * H, np.float32)
        half[: 2 * H] = half[3 * H:] = 0.5
        for a in self.tables + [self.w_hh0] + self.w + self.b + [t for t in [self.interval_table] if t is not None]:
            a *= half

    def zero_state(self, batch: int):
        z = lambda: [np.zeros((batch, self.hidden), np.float32) for _ in range(self.layers)]  # noqa: E731
        return z(), z(), None

    def step(self, ids: np.ndarray, state):
        """Feed one note per row, ids (B, F) -> (top layer output (B, H), new state)."""
        h, c, last = state
        H = self.hidden
        g = h[0] @ self.w_hh0  # (B, 4H)
        for f, table in enumerate(self.tables):
            g += table[ids[:, f]]
        if self.interval_table is not None:  # as model.interval_ids
            g += self.interval_table[NO_INTERVAL if last is None else
                                     np.clip(ids[:, 0] - last, -INTERVAL_MAX, INTERVAL_MAX) + INTERVAL_MAX]
        new_h, new_c = [], []
        for l in range(self.layers):
            if l:
                g = np.concatenate((x, h[l]), axis=1) @ self.w[l - 1]  # (B, 4H)
                g += self.b[l - 1]
            t = np.tanh(g, out=g)  # (B, 4H), gate order i, f, g, o as in torch; i, f, o pre-halved
            s = np.multiply(t, 0.5)
            s += 0.5  # sigmoid of the i, f, o gates (the g slice of s unused)
            cl = s[:, H: 2 * H] * c[l]
            cl += s[:, :H] * t[:, 2 * H: 3 * H]
            x = s[:, 3 * H:] * np.tanh(cl)  # (B, H)
            new_h.append(x)
            new_c.append(cl)
        return x, (new_h, new_c, np.array(ids[:, 0]))

    def pitch_logits(self, h: np.ndarray) -> np.ndarray:
        """(B, H) -> (B, V_pitch)."""
        return h @ self.w_pitch + self.b_pitch

    def field_logits(self, h: np.ndarray, pitch: np.ndarray, chosen: np.ndarray | None = None) -> np.ndarray:
        """(B, H), chosen pitch ids (B,) -> (B, K, V_max) logits of the other fields (-inf padded).

        With ``chain_all``, field k also sees ``chosen[:, :k]`` (ids of the fields before it; where
        missing, the most likely ones), as ``CausalLSTM.heads`` with ``next_fields``."""
        if not self.chained:
            return (h @ self.w_fields + self.b_fields).reshape(len(h), -1, self.v_max)
        pre = h @ self.w_cond
        pre += self.cond_table[pitch]
        if not self.chain_all:
            return (np.maximum(pre, 0.0) @ self.w_fields + self.b_fields).reshape(len(h), -1, self.v_max)
        out = np.empty((len(h), len(self.sizes) - 1, self.v_max), np.float32)
        for k in range(out.shape[1]):
            cols = slice(k * self.v_max, (k + 1) * self.v_max)
            out[:, k] = np.maximum(pre, 0.0) @ self.w_fields[:, cols] + self.b_fields[cols]
            if k < len(self.chain_tables):
                ids = chosen[:, k] if chosen is not None and k < chosen.shape[1] else out[:, k].argmax(-1)
                pre = pre + self.chain_tables[k][ids]
        return out

    def heads(self, h: np.ndarray, pitch: np.ndarray, chosen: np.ndarray | None = None) -> list[np.ndarray]:
        """Logits per field like ``CausalLSTM.heads``: [(B, V_f)] (for checking against the model)."""
        later = self.field_logits(h, pitch, chosen)
        return [self.pitch_logits(h)] + [later[:, k, :n] for k, n in enumerate(self.sizes[1:])]
