"""Melody Forge: classical-piano generation with LSTMs, from MIDI to MIDI.

Modules, one concern each: ``workspace`` (where data and outputs live), ``config`` (presets),
``midi`` (MIDI <-> notes), ``quantize`` (time bins), ``tokens`` (notes <-> ids), ``maestro``
(download), ``sources`` (embedded corpora, MIDI folders and their splits), ``corpus`` (token
cache), ``data`` (datasets, loaders), ``model``, ``train``, ``sample``, ``metrics``, ``runs`` (run
folders, checkpoints to use), ``estimate`` (training time), ``audio``, ``plots``, ``widgets``,
``cli``.
"""

__version__ = "0.1.0"
