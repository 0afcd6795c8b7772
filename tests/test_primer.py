"""A MIDI file or upload as the primer (melody_utils/generate/primer.py): too large is one line, before it is written anywhere."""

import pytest

from melody_utils.generate import primer
from melody_utils.music.midi import MAX_MIDI_BYTES
from melody_utils.music.tokens import seed_vocab


def test_an_upload_larger_than_a_midi_file_may_be_is_refused(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the upload was written to a temp file")

    monkeypatch.setattr(primer.tempfile, "mkstemp", never)
    data = b"MThd" + bytes(MAX_MIDI_BYTES)
    with pytest.raises(ValueError, match=rf"big.mid is 34 MB, more than the {MAX_MIDI_BYTES >> 20} MB a MIDI file may have"):
        primer.primer_from_bytes("big.mid", data, seed_vocab(), 8)
