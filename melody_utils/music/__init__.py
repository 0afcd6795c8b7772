"""Music as numbers: MIDI files <-> note arrays (``midi``), time bins (``quantize``), one token per note
(``tokens``), key and scale names (``scales``) and the statistics of a piece (``stats``). Depends on nothing
else in the package but ``files``."""
