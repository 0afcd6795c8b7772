"""MAESTRO v3.0.0 (MIDI only): download, extract, read the metadata and the official split.

The MIDI zip (~56 MiB) unpacks into a folder holding ``maestro-v3.0.0.csv`` and one folder of
``.midi`` files per year. Everything here is restartable:

- :func:`download` streams into ``<dest>.part``, resumes an interrupted transfer with an HTTP
  ``Range`` request, checks the size and the sha256 (MAESTRO's published one,
  :data:`MAESTRO_ZIP_SHA256`), and renames the finished file into place, so ``<dest>`` is either
  absent or complete.
- :func:`extract` unpacks into a temp folder beside the destination and renames it into place
  with a marker file, so a second call is free and a crash leaves no half-extracted corpus. It
  never deletes anything it did not unpack: a destination that exists without its marker (a
  copy unzipped by hand, a folder of the user's) is left as it is, and the error says what is
  there and what to do.
- :func:`ensure_maestro` does both and returns the folder, or ``None`` (with a one-sentence
  warning) when the network is unreachable: the embedded corpus is used instead.

The metadata CSV carries MAESTRO's own train/validation/test split, which the corpus builder
uses through :func:`midi_files_with_split`. MAESTRO's licence is :data:`MAESTRO_LICENCE`
(non-commercial): checkpoints trained on it carry it (:func:`melody_utils.data.sources.source_licence`).
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from tqdm.auto import tqdm

from ..config import DATA_DIR, SPLITS

MAESTRO_VERSION = "maestro-v3.0.0"
MAESTRO_URL = "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0-midi.zip"
MAESTRO_ZIP_BYTES = 58_416_533  # size of the v3.0.0 MIDI zip: a different size means a bad download
# the zip's sha256 as the dataset's page publishes it (magenta.withgoogle.com/datasets/maestro)
MAESTRO_ZIP_SHA256 = "70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c"
MAESTRO_LICENCE = ("CC BY-NC-SA 4.0 (Google LLC; non-commercial, share alike: "
                   "https://creativecommons.org/licenses/by-nc-sa/4.0/)")
DEFAULT_ROOT = DATA_DIR / MAESTRO_VERSION  # folder holding the CSV and the year folders
MAESTRO_ZIP_NAME = f"{MAESTRO_VERSION}-midi.zip"  # saved beside that folder
METADATA_CSV = f"{MAESTRO_VERSION}.csv"
METADATA_COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration")
EXTRACTED_MARKER = ".extracted.json"  # written last into an extracted folder: its presence means "complete"
CHUNK_BYTES = 1 << 16  # read size while streaming a download
RETRY_WAIT_S = 1.0  # pause before retry k is k * RETRY_WAIT_S (tests set it to 0)
OFFLINE_HINT = "no network? the embedded corpus is used instead when MAESTRO is absent"


class DownloadError(ConnectionError):
    """A download failed: host unreachable, HTTP error, or a wrong size/hash after every retry."""


class CorruptZipError(ValueError):
    """A zip file could not be read; it has been deleted so the next call downloads it again."""


class _Interrupted(Exception):
    """A transient failure (dropped connection, timeout, 5xx): the download is retried."""


def _say(message: str) -> None:
    # tqdm.write keeps an active progress bar intact; stderr so stdout stays clean for pipes.
    tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# download


def _file_problem(path: Path, expected_size: int | None, sha256: str | None) -> str | None:
    """Why ``path`` is not the expected file, or ``None`` when it is."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"has {size:,} bytes instead of {expected_size:,}"
    if sha256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != sha256.lower():
            return f"has sha256 {h.hexdigest()[:16]}... instead of {sha256.lower()[:16]}..."
    return None


def _fetch(url: str, part: Path, expected_size: int | None, progress: bool, timeout: float) -> None:
    """One attempt: append to ``part`` (resuming with a Range request) until the server is done.

    Raises ``_Interrupted`` for failures worth retrying and :class:`DownloadError` for the rest.
    """
    parsed = urlparse(url)
    host = parsed.hostname or url
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have >= expected_size:
        if have == expected_size:
            return  # already complete: only the checks remain
        part.unlink()  # longer than the real file: cannot be a prefix of it
        have = 0

    headers = {"User-Agent": "melody-forge"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # range not satisfiable: the .part is not a prefix of the file
            part.unlink()
            raise _Interrupted("the server refused to resume (HTTP 416), restarting from zero") from None
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason} from {host}") from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}; check the URL") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if parsed.scheme == "file":
            raise DownloadError(f"could not read {url} ({reason}); check the path") from None
        message = f"could not reach {host} ({reason}): {OFFLINE_HINT}"
        if have:  # a transfer was under way: the network may come back
            raise _Interrupted(message) from None
        raise DownloadError(message) from None

    with resp:
        status = resp.status or 200  # file:// responses carry no status: a full body
        if status == 206:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise _Interrupted(f"{host} resumed at the wrong offset, restarting from zero")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:  # 200: the server ignored the Range header (or there was none): start over
            if have:
                _say(f"{host} does not support resuming; downloading {part.name} from the start")
            have, mode = 0, "wb"
            total = None
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None  # bytes in this response
        if total is None and length is not None:
            total = have + length
        received = 0
        bar = tqdm(total=total or expected_size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not progress, leave=False)
        with bar, open(part, mode) as f:
            while True:
                try:
                    chunk = resp.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                    raise _Interrupted(f"connection to {host} dropped after {have + received:,} bytes ({exc})") from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    if length is not None and received < length:
        raise _Interrupted(f"connection to {host} closed after {have + received:,} of {have + length:,} bytes")


def download(url: str, dest: str | os.PathLike, expected_size: int | None = None, progress: bool = True,
             timeout: float = 60, retries: int = 3, sha256: str | None = None) -> Path:
    """Download ``url`` (http, https or file) to ``dest`` and return ``dest``.

    Streams into ``<dest>.part`` and resumes it with an HTTP Range request after an interruption
    (from zero when the server ignores Range). The finished file must have ``expected_size``
    bytes and the ``sha256`` hex digest when given; a wrong file is deleted and fetched again.
    Transient failures and wrong files are retried ``retries`` times in all, then a
    :class:`DownloadError` (a ``ConnectionError``) says what went wrong. ``dest`` is renamed
    into place only when complete; an existing ``dest`` that passes the checks is kept as is.
    """
    dest = Path(dest)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        problem = _file_problem(dest, expected_size, sha256)
        if problem is None:
            return dest
        _say(f"{dest} {problem}: deleted it, downloading again")
        dest.unlink()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create folder {dest.parent} ({exc.strerror}); choose a writable data folder") from None

    failures = 0
    while True:
        try:
            _fetch(url, part, expected_size, progress, timeout)
            problem = _file_problem(part, expected_size, sha256)
            if problem is None:
                break
            part.unlink()
            failure, then = f"the downloaded {dest.name} {problem}", "deleted it, downloading again"
            kept = ""
        except _Interrupted as exc:
            failure, then = str(exc), "resuming" if part.exists() else "retrying"
            kept = f"; the partial file {part} is kept: run again to resume" if part.exists() else ""
        failures += 1
        if failures > retries:
            raise DownloadError(f"download of {url} failed {failures} time(s), last: {failure}{kept}")
        _say(f"{failure}: {then} ({failures}/{retries})")
        time.sleep(RETRY_WAIT_S * failures)
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------------------------
# extract


def extract(zip_path: str | os.PathLike, dest_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Unpack ``zip_path`` into ``dest_dir`` and return ``dest_dir``.

    A zip holding a single top folder (like MAESTRO's ``maestro-v3.0.0/``) has that folder's
    content placed in ``dest_dir``. The files go to a temp folder first, then one rename puts
    them in place with a marker file; when the marker is already there the call does nothing.
    A ``dest_dir`` that exists without the marker was not made here: an empty one is used, any
    other raises ``FileExistsError`` saying what it holds, and nothing in it is touched. A
    corrupt zip raises :class:`CorruptZipError` naming it, and is deleted so the next download
    starts afresh.
    """
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    if (dest_dir / EXTRACTED_MARKER).is_file():
        return dest_dir
    _refuse_foreign_folder(dest_dir)
    if not zip_path.is_file():
        raise FileNotFoundError(f"zip file not found: {zip_path} (download it first, e.g. with maestro.ensure_maestro())")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".tmp", dir=dest_dir.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                members = zf.infolist()
                with tqdm(total=sum(m.file_size for m in members), unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"extract {zip_path.name}", disable=not progress, leave=False) as bar:
                    for m in members:
                        zf.extract(m, tmp)  # zipfile drops absolute paths and '..' from names
                        bar.update(m.file_size)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            zip_path.unlink(missing_ok=True)
            raise CorruptZipError(
                f"{zip_path} is not a valid zip file ({exc}); it has been deleted, so the next call downloads it again"
            ) from None
        entries = list(tmp.iterdir())
        src = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        marker = {"zip": zip_path.name, "zip_bytes": zip_path.stat().st_size, "files": sum(not m.is_dir() for m in members)}
        (src / EXTRACTED_MARKER).write_text(json.dumps(marker) + "\n")
        _refuse_foreign_folder(dest_dir)  # again: something may have appeared there meanwhile
        if dest_dir.is_dir():
            dest_dir.rmdir()  # empty (else OSError): the rename below needs the name free
        os.replace(src, dest_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the temp folder only: ours
    return dest_dir


def _refuse_foreign_folder(dest_dir: Path) -> None:
    """``FileExistsError`` when ``dest_dir`` exists and is not an empty folder: it holds what someone
    else put there (extraction would have left its marker), so it is neither replaced nor deleted."""
    if not dest_dir.exists() and not dest_dir.is_symlink():
        return
    if not dest_dir.is_dir():
        raise FileExistsError(f"cannot extract into {dest_dir}: a file of that name exists; move it or choose another folder")
    entries = sorted(p.name for p in dest_dir.iterdir())
    if not entries:
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    if (dest_dir / METADATA_CSV).is_file():
        raise FileExistsError(f"{dest_dir} already holds a MAESTRO copy ({METADATA_CSV}) that was not unpacked here; "
                              f"nothing was changed: use it as it is (--source {dest_dir}), or move it away to unpack afresh")
    raise FileExistsError(f"{dest_dir} exists and holds files this extraction did not write ({shown}); nothing was "
                          f"deleted: move them away, or extract into another folder (e.g. {dest_dir / MAESTRO_VERSION})")


# ---------------------------------------------------------------------------------------------
# metadata


def read_metadata(root: str | os.PathLike) -> list[dict]:
    """Rows of ``maestro-v3.0.0.csv`` in ``root`` (or that CSV's path) as dicts.

    Keys are :data:`METADATA_COLUMNS`; ``year`` is an int, ``duration`` a float (seconds), the
    rest strings. ``midi_filename`` is relative to the folder holding the CSV.
    """
    root = Path(root)
    path = root if root.suffix == ".csv" else root / METADATA_CSV
    if not path.is_file():
        raise FileNotFoundError(f"MAESTRO metadata not found: {path} (run maestro.ensure_maestro() to download it)")
    rows = []
    for line, row in enumerate(csv_rows(path, METADATA_COLUMNS, "is it the MAESTRO v3.0.0 metadata CSV?"), start=2):
        try:
            row["year"] = int(row["year"])
            row["duration"] = float(row["duration"])
        except (TypeError, ValueError):
            raise ValueError(f"{path} line {line}: bad year {row['year']!r} or duration {row['duration']!r}") from None
        if row["split"] not in SPLITS:
            raise ValueError(f"{path} line {line}: split {row['split']!r} is not one of {SPLITS}")
        rows.append({c: row[c] for c in METADATA_COLUMNS})
    return rows


def csv_rows(path: Path, columns, fix: str) -> list[dict]:
    """The rows of a UTF-8 CSV file with a header holding ``columns``; else a ValueError naming the
    file, the missing columns and ``fix`` (what the file should be)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}; {fix}")
        return [dict(r) for r in reader]


def summary(rows: list[dict]) -> dict[str, dict]:
    """Performances, hours and distinct composers per split, plus ``"all"``.

    Returns ``{"train": {"performances": int, "hours": float, "composers": int}, "validation":
    ..., "test": ..., "all": ...}``; every official split is present, empty ones with zeros.
    """
    groups = defaultdict(list)
    for row in rows:
        groups[row["split"]].append(row)
    groups["all"] = list(rows)
    out = {}
    for split in (*SPLITS, *sorted(set(groups) - set(SPLITS) - {"all"}), "all"):
        g = groups.get(split, [])
        out[split] = {
            "performances": len(g),
            "hours": sum(r["duration"] for r in g) / 3600.0,
            "composers": len({r["canonical_composer"] for r in g}),
        }
    return out


def midi_files_with_split(root: str | os.PathLike) -> list[tuple[Path, str, str, str]]:
    """``(midi_path, split, composer, title)`` for every performance, sorted by file name.

    Files listed in the CSV but absent on disk are skipped with one warning (a trimmed copy).
    """
    root = Path(root)
    base = root.parent if root.suffix == ".csv" else root
    out, missing = [], []
    for row in read_metadata(root):
        path = base / row["midi_filename"]
        if path.is_file():
            out.append((path, row["split"], row["canonical_composer"], row["canonical_title"]))
        else:
            missing.append(path)
    if missing:
        warnings.warn(f"{len(missing)} MIDI file(s) listed in {base / METADATA_CSV} are missing, e.g. {missing[0]}; "
                      "they are skipped (delete the folder and run maestro.ensure_maestro() for a full copy)",
                      stacklevel=2)
    return sorted(out, key=lambda t: t[0].relative_to(base).as_posix())


# ---------------------------------------------------------------------------------------------
# one call for notebooks and the corpus builder


def find_maestro(root: str | os.PathLike | None = None) -> Path | None:
    """The MAESTRO folder (holding the CSV) if present, else ``None``. Never touches the network.

    ``root`` may be the folder itself or its parent (e.g. ``data/``); default ``data/maestro-v3.0.0``.
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    for candidate in (root, root / MAESTRO_VERSION):
        if (candidate / METADATA_CSV).is_file():
            return candidate
    return None


def ensure_maestro(root: str | os.PathLike | None = None, url: str = MAESTRO_URL,
                   expected_size: int | None = MAESTRO_ZIP_BYTES, progress: bool = True,
                   strict: bool = False, keep_zip: bool = True, sha256: str | None = MAESTRO_ZIP_SHA256) -> Path | None:
    """Download and extract MAESTRO unless present; return the folder holding CSV and MIDI.

    The zip must have ``expected_size`` bytes and the ``sha256`` digest (MAESTRO's published ones by
    default; a mirror of another file passes its own or None), else it is fetched again, then refused.

    The zip is saved beside ``root`` (``data/maestro-v3.0.0-midi.zip`` by default; kept unless
    ``keep_zip=False``). A ``root`` that holds other files and is not named ``maestro-v3.0.0``
    is taken as the parent folder :func:`find_maestro` also accepts: MAESTRO goes into
    ``root/maestro-v3.0.0`` (said in one line), and nothing of ``root`` is touched. When the
    download or the zip fails, the reason is given in a one-sentence warning and ``None`` is
    returned, so callers fall back to the embedded corpus; ``strict=True`` raises instead
    (:class:`DownloadError` or :class:`CorruptZipError`).
    """
    found = find_maestro(root)
    if found is not None:
        return found
    root = Path(root) if root is not None else DEFAULT_ROOT
    if root.name != MAESTRO_VERSION and root.is_dir() and any(root.iterdir()):
        _say(f"{root} holds other files: MAESTRO goes into {root / MAESTRO_VERSION}")
        root = root / MAESTRO_VERSION
    if not (root / EXTRACTED_MARKER).is_file():
        _refuse_foreign_folder(root)  # before a download it could not unpack
    zip_path = root.parent / MAESTRO_ZIP_NAME  # one fixed name, whatever mirror ``url`` points at
    try:
        download(url, zip_path, expected_size=expected_size, progress=progress, sha256=sha256)
        extract(zip_path, root, progress=progress)
    except (DownloadError, CorruptZipError) as exc:
        if strict:
            raise
        warnings.warn(str(exc), stacklevel=2)
        return None
    if not (root / METADATA_CSV).is_file():
        raise CorruptZipError(f"{zip_path} unpacked into {root} holds no {METADATA_CSV}; is {url} the MAESTRO v3.0.0 MIDI zip?")
    if not keep_zip:
        zip_path.unlink(missing_ok=True)
    return root
