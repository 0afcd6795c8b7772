"""Generation: the sampling loop (``sample``), the controls that act on the logits (``controls``), the
piece memory (``memory``) and the user's own MIDI as a primer (``primer``)."""
