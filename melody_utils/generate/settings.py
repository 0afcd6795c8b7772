"""Everything that says how to sample a piece, in one object that checks itself.

:class:`SamplingSettings` is what the command line, the notebooks' widgets, the sampling sweep and
``evaluate`` build and pass (as Hugging Face's ``GenerationConfig``): the filters (temperature,
top-k, top-p), the length (notes or seconds), the seed, the piece memory's strength, the composer,
whether the primer is kept, and the :class:`~melody_utils.generate.controls.Controls`. Every value
is checked when the object is made (:meth:`SamplingSettings.replace` checks again), so the command
line and the widgets only convert text and slider positions. The composer is checked against the
model when generation starts (only the model knows its composers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..checks import Limit, check_fields, setting
from ..config import FLAG, MEMORY, N_NOTES, SEED, TEMPERATURE, TOP_K, TOP_P, SampleConfig
from .controls import MAX_SECONDS, Controls

SECONDS = Limit("float", f"a number in (0, {MAX_SECONDS:g}] (length of music; None = by notes)", 0.0, MAX_SECONDS,
                lo_open=True, optional=True)


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample (defaults: the plain model, nucleus 0.95, 200 notes)."""

    temperature: float = setting(1.0, TEMPERATURE)  # > 0; lower is more conservative
    top_k: int = setting(0, TOP_K)  # keep the k most likely ids; 0 = off, 1 = greedy
    top_p: float = setting(0.95, TOP_P)  # nucleus mass in (0, 1]; 1 = off
    n_notes: int = setting(200, N_NOTES)  # notes to generate (unless ``seconds``)
    seconds: float | None = setting(None, SECONDS)  # generate this many seconds of music instead
    seed: int = setting(0, SEED)  # the same seed gives the same notes
    memory: float = setting(0.0, MEMORY)  # piece memory (generate/memory.py): 0 = off, 1 = its fitted weights
    composer: object = None  # a composer's name, an id, "any" or None (models trained with composers)
    keep_primer: bool = setting(False, FLAG)  # the output starts with the primer's notes
    controls: Controls = field(default_factory=Controls)  # key, range, density, per-field temperature, guard

    def __post_init__(self):
        check_fields(self)
        if self.controls is None:
            object.__setattr__(self, "controls", Controls())
        if not isinstance(self.controls, Controls):
            raise ValueError(f"controls must be a Controls, got {type(self.controls).__name__}")

    def as_changes(self) -> dict:
        """Every setting by name (shallow: the Controls stay one object), e.g. for ``generate_fn(**...)``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def knobs(self) -> dict:
        """The filters: temperature, top_k, top_p."""
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}

    def replace(self, **changes) -> "SamplingSettings":
        """A copy with ``changes`` (checked); an unknown name is a ValueError listing the known ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown sampling setting(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **changes) if changes else self

    @classmethod
    def from_config(cls, sample: SampleConfig, **changes) -> "SamplingSettings":
        """The settings a config's ``sample`` section gives, with ``changes`` on top."""
        base = {name: getattr(sample, name) for name in ("temperature", "top_k", "top_p", "n_notes", "seed", "memory",
                                                         "keep_primer")}
        return cls(**base).replace(**changes)
