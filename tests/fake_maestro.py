"""A tiny MAESTRO-like zip and a local HTTP server that can misbehave on purpose.

Used by tests/test_maestro.py: the zip has MAESTRO's layout (one top folder holding the CSV and
year folders of ``.midi`` files); the server listens on 127.0.0.1 only, supports Range requests
(or ignores them), and follows a per-request plan: drop the connection after N bytes, send
other bytes, or answer with an HTTP error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np

from melody_utils.music.midi import Notes, midi_to_notes, notes_to_midi

TOP = "maestro-v3.0.0"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed member timestamps: the same zip bytes on every run

# (midi_filename, split, composer, title): two train pieces, one validation, one test
PIECES = [
    ("2004/MIDI-Fake_01.midi", "train", "Johann Sebastian Bach", "Prelude and Fugue in C Major, BWV 846"),
    ("2004/MIDI-Fake_02.midi", "train", "Frédéric Chopin", "Étude Op. 10 No. 1"),
    ("2006/MIDI-Fake_03.midi", "validation", "Johann Sebastian Bach", "Invention No. 1"),
    ("2008/MIDI-Fake_04.midi", "test", "Franz Schubert", "Impromptu, D. 899 No. 3"),
]


@dataclass
class FakeMaestro:
    zip_bytes: bytes  # the whole zip
    midi_bytes: dict[str, bytes]  # midi_filename -> file bytes
    rows: list[dict]  # what the CSV says, with year int and duration float

    @property
    def sha256(self) -> str:
        """The stand-in zip's own digest (what ensure_maestro checks instead of the published one)."""
        return hashlib.sha256(self.zip_bytes).hexdigest()


def build_fake_maestro(work: Path) -> FakeMaestro:
    """Write a few short MIDI files under ``work`` and pack them with a CSV like MAESTRO's."""
    rng = np.random.default_rng(0)
    midi_bytes, rows = {}, []
    for i, (name, split, composer, title) in enumerate(PIECES):
        n = 8 + 4 * i
        notes = Notes.from_steps(rng.integers(48, 84, n), np.full(n, 0.25), np.full(n, 0.2), rng.integers(40, 100, n))
        path = notes_to_midi(notes, work / name)
        midi_bytes[name] = path.read_bytes()
        rows.append({"canonical_composer": composer, "canonical_title": title, "split": split,
                     "year": int(name[:4]), "midi_filename": name, "audio_filename": name.replace(".midi", ".wav"),
                     "duration": midi_to_notes(path).seconds()})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(f"{TOP}/", ZIP_DATE), b"")
        zf.writestr(zipfile.ZipInfo(f"{TOP}/{TOP}.csv", ZIP_DATE), text.getvalue().encode("utf-8"), zipfile.ZIP_DEFLATED)
        for name, data in midi_bytes.items():
            zf.writestr(zipfile.ZipInfo(f"{TOP}/{name}", ZIP_DATE), data, zipfile.ZIP_DEFLATED)
    return FakeMaestro(buf.getvalue(), midi_bytes, rows)


class FakeServer:
    """Serve ``payload`` at ``/maestro.zip`` on 127.0.0.1 from a background thread.

    ``plan[i]`` shapes the answer to request ``i`` (later requests are answered normally):
    ``{"drop_after": n}`` sends the headers of the full answer, then only n body bytes, then
    closes the connection; ``{"body": b}`` sends ``b`` instead of the payload; ``{"status": c}``
    answers HTTP error ``c``. ``honor_range=False`` ignores Range headers (always 200).
    ``requests`` records the headers of each request. Use as a context manager: the thread
    stops on exit.
    """

    def __init__(self, payload: bytes, plan: list[dict] | None = None, honor_range: bool = True):
        self.payload, self.plan, self.honor_range = payload, list(plan or []), honor_range
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a stuck client cannot hold the thread for long

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                i = len(server.requests)
                server.requests.append(dict(self.headers))
                step = server.plan[i] if i < len(server.plan) else {}
                if self.path != "/maestro.zip" or "status" in step:
                    self.send_error(step.get("status", 404))
                    return
                body, start, status = step.get("body", server.payload), 0, 200
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match and server.honor_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                end = len(body) if "drop_after" not in step else start + step["drop_after"]
                self.wfile.write(body[start:end])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/maestro.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
