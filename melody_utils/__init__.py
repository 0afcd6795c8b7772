"""Melody Forge: classical-piano generation with LSTMs, from MIDI to MIDI.

Subpackages in the order a note travels through them (each imports only from those before it):

- ``music``: MIDI <-> notes, time bins, tokens, scales, statistics of a piece
- ``data``: MAESTRO, the embedded corpora, the token cache, training windows
- ``model``: the LSTMs, their numpy stepper, checkpoints
- ``train``: the training loop, schedule, run folders, time estimates
- ``generate``: sampling, the controls, the piece memory, primers
- ``display``: plots and audio
- ``evaluate``: likelihood, originality, the sampling sweep, the report
- ``notebook``: the interactive generator
- ``cli``: ``python -m melody_utils ...``

Loose modules below them all: ``workspace`` (where data and outputs live), ``config`` (presets),
``device`` (CPU/GPU, precision, seeding), ``files`` (atomic writes). See docs/architecture.md.
"""

__version__ = "0.1.0"
