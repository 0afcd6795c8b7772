"""The sampling pipeline: from a field's logits to ids, in one order, built from one settings object.

For every field of every note (pitch first, then step, duration, velocity), :class:`SamplingPipeline`:

1. mixes in the **piece memory** (:class:`MemoryMix`, when its strength is above 0). The mixture
   is the model's distribution (``evaluate`` scores exactly it), so it comes before any sampling
   choice;
2. applies the **grammar mask** (step field: no second note at one onset unless it is higher). It
   says which notes can exist at all, so everything after it sees only those: the density
   controller plans with the chords that can really be played (with the mask after the controls,
   its realised density fell 30% short of a 12 notes/s target);
3. divides by the **temperature**;
4. runs the **controls** (:data:`~melody_utils.generate.controls.CONTROLS`, each made from the
   settings by its ``from_settings``, in their order), each on the fields it names; their nats are
   nats of the distribution drawn from;
5. keeps **top-k**, then **top-p**, and draws (:func:`~melody_utils.generate.logits.sample_logits`).

Then it tells the stateful processors what was drawn (``chose``) and, once a note is complete,
that it joined the piece (``observe``). A new control is one :class:`~melody_utils.generate.controls.Control`
subclass and its setting in :class:`~melody_utils.generate.controls.Controls` (docs/architecture.md).
"""

from __future__ import annotations

import numpy as np

from ..music.tokens import Vocab
from .controls import CONTROLS
from .logits import STEP, GrammarMask, LogitsProcessor, NoteContext, as_rows, sample_logits, zero_step_id
from .memory import MEMORY, MemorySettings, PieceMemory
from .settings import SamplingSettings


class MemoryMix(LogitsProcessor):
    """The piece memory (:class:`~melody_utils.generate.memory.PieceMemory`) as a processor: its
    mixture for the fields it predicts, narrowed by each field drawn, fed each note of the piece."""

    def __init__(self, memory: PieceMemory):
        self.memory = memory
        self.fields = tuple(range(memory.fields))

    def __call__(self, field, logits, context):
        return self.memory.mix(field, logits)

    def chose(self, field, ids):
        self.memory.chose(field, ids)

    def observe(self, notes):
        self.memory.observe(notes)


def _overrides(p: LogitsProcessor, hook: str) -> bool:
    return getattr(type(p), hook) is not getattr(LogitsProcessor, hook)


class SamplingPipeline:
    """Steps 1-5 of the module docstring for a batch of ``batch`` pieces of up to ``capacity`` notes;
    ``memory``: the piece memory's settings (the model's own, ``memory.model_memory``)."""

    def __init__(self, settings: SamplingSettings, vocab: Vocab, batch: int, capacity: int,
                 memory: MemorySettings = MEMORY):
        self.settings = settings
        self.distribution = [MemoryMix(PieceMemory(batch, capacity, settings.memory, memory))] if settings.memory else []
        self.controls = [p for cls in CONTROLS if (p := cls.from_settings(settings, vocab)) is not None]
        self.mask = GrammarMask(zero_step_id(vocab))
        self.scale = 1.0 / settings.temperature
        self._all = self.distribution + self.controls
        self._heard = [p for p in self._all if _overrides(p, "chose")]
        self._told = [p for p in self._all if _overrides(p, "observe")]

    @property
    def field_by_field(self) -> bool:
        """Whether fields must be drawn one after another (a processor hears each draw)."""
        return bool(self._heard)

    def logits(self, field: int, logits, context: NoteContext) -> np.ndarray:
        """Steps 1-4: (B, V) logits of ``field`` -> (B, V) float64 logits to draw from."""
        z = as_rows(logits)
        for p in self.distribution:
            if field in p.fields:
                z = p(field, z, context)
        if field == STEP and context.prev_pitch is not None:
            self.mask.measure(z, context.pitch, context.prev_pitch)
            z = self.mask.apply(z, context.pitch, context.prev_pitch)
        if self.scale != 1.0:
            z *= self.scale
        for p in self.controls:
            if field in p.fields:
                z = p(field, z, context)
        return z

    def draw(self, field: int, logits, u, context: NoteContext) -> np.ndarray:
        """(B, V) logits of ``field`` -> (B,) ids drawn with uniforms ``u`` (B,)."""
        ids = sample_logits(self.logits(field, logits, context), u, 1.0, self.settings.top_k, self.settings.top_p)
        for p in self._heard:
            p.chose(field, ids)
        return ids

    def draw_together(self, logits: np.ndarray, sizes, u, context: NoteContext) -> np.ndarray:
        """The fields after the pitch at once: (B, K, V_max) logits (-inf padded; field k + 1 has
        ``sizes[k]`` ids), uniforms (B, K) -> (B, K) ids. Only when not :attr:`field_by_field`."""
        z = np.array(logits, dtype=np.float64)
        for k, n in enumerate(sizes):
            z[:, k, :n] = self.logits(k + 1, z[:, k, :n], context)
        return sample_logits(z, u, 1.0, self.settings.top_k, self.settings.top_p)

    def observe(self, notes: np.ndarray) -> None:
        """A note per row (B, F) joined the piece."""
        for p in self._told:
            p.observe(notes)

