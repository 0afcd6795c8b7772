"""MAESTRO download/extract/metadata against a fake MAESTRO zip served from 127.0.0.1."""

import hashlib
import io
import socket
import zipfile

import pytest

from fake_maestro import PIECES, FakeServer, build_fake_maestro
from melody_utils.data import maestro


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return build_fake_maestro(tmp_path_factory.mktemp("fake_maestro_src"))


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(maestro, "RETRY_WAIT_S", 0.0)


def corrupted(data: bytes) -> bytes:
    """Same length, 32 bytes flipped a third of the way in (inside a member's deflated data)."""
    i = len(data) // 3
    return data[:i] + bytes(b ^ 0xFF for b in data[i:i + 32]) + data[i + 32:]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ensure_maestro_downloads_extracts_and_reads_split(fake, tmp_path):
    root = tmp_path / "data" / "maestro-v3.0.0"
    with FakeServer(fake.zip_bytes) as server:
        got = maestro.ensure_maestro(root, url=server.url, expected_size=len(fake.zip_bytes), progress=False,
                                     sha256=fake.sha256)
        assert got == root
        assert maestro.find_maestro(root) == root and maestro.find_maestro(root.parent) == root
        # a second call finds the folder and asks the server nothing
        assert maestro.ensure_maestro(root, url=server.url, expected_size=len(fake.zip_bytes), progress=False,
                                     sha256=fake.sha256) == root
        assert len(server.requests) == 1
    assert (tmp_path / "data" / "maestro-v3.0.0-midi.zip").read_bytes() == fake.zip_bytes
    assert not list((tmp_path / "data").glob(".*tmp")), "temp folders left behind"

    rows = maestro.read_metadata(root)
    assert rows == fake.rows  # types converted, titles with commas intact
    s = maestro.summary(rows)
    for split in maestro.SPLITS:
        mine = [r for r in fake.rows if r["split"] == split]
        assert s[split]["performances"] == len(mine)
        assert s[split]["hours"] == pytest.approx(sum(r["duration"] for r in mine) / 3600)
        assert s[split]["composers"] == len({r["canonical_composer"] for r in mine})
    assert s["all"]["performances"] == len(PIECES) and s["all"]["composers"] == 3

    files = maestro.midi_files_with_split(root)
    assert [(p.relative_to(root).as_posix(), sp, c, t) for p, sp, c, t in files] == sorted(PIECES)
    for path, *_ in files:
        assert path.read_bytes() == fake.midi_bytes[path.relative_to(root).as_posix()]


def test_interrupted_download_resumes_with_range(fake, tmp_path, capsys):
    dest = tmp_path / "m.zip"
    n = len(fake.zip_bytes) // 3
    # every answer of the first call drops after n bytes: it gives up and keeps the .part
    with FakeServer(fake.zip_bytes, plan=[{"drop_after": n}] * 2) as server:
        with pytest.raises(maestro.DownloadError, match="run again to resume"):
            maestro.download(server.url, dest, len(fake.zip_bytes), progress=False, retries=1)
        part = tmp_path / "m.zip.part"
        assert part.stat().st_size == 2 * n and not dest.exists()
        assert "Range" not in server.requests[0] and server.requests[1]["Range"] == f"bytes={n}-"
        # the next call resumes where the .part ends
        maestro.download(server.url, dest, len(fake.zip_bytes), progress=False)
        assert server.requests[2]["Range"] == f"bytes={2 * n}-"
    assert dest.read_bytes() == fake.zip_bytes and not part.exists()
    assert f"closed after {n:,} of {len(fake.zip_bytes):,} bytes: resuming (1/1)" in capsys.readouterr().err


def test_server_ignoring_range_restarts_from_zero(fake, tmp_path, capsys):
    dest = tmp_path / "m.zip"
    with FakeServer(fake.zip_bytes, plan=[{"drop_after": 500}], honor_range=False) as server:
        maestro.download(server.url, dest, len(fake.zip_bytes), progress=False)
        assert server.requests[1]["Range"] == "bytes=500-"
    assert dest.read_bytes() == fake.zip_bytes
    assert "does not support resuming" in capsys.readouterr().err


@pytest.mark.parametrize("bad, check", [("short", "size"), ("corrupt", "sha256")])
def test_wrong_download_is_deleted_and_fetched_again(fake, tmp_path, capsys, bad, check):
    dest = tmp_path / "m.zip"
    body = fake.zip_bytes[:-100] if bad == "short" else corrupted(fake.zip_bytes)
    sha = hashlib.sha256(fake.zip_bytes).hexdigest() if check == "sha256" else None
    with FakeServer(fake.zip_bytes, plan=[{"body": body}]) as server:
        maestro.download(server.url, dest, len(fake.zip_bytes), progress=False, sha256=sha)
        assert len(server.requests) == 2 and "Range" not in server.requests[1]
    assert dest.read_bytes() == fake.zip_bytes
    err = capsys.readouterr().err
    assert "deleted it, downloading again" in err
    assert (f"has {len(body):,} bytes instead of {len(fake.zip_bytes):,}" if check == "size" else "sha256") in err


def test_always_wrong_size_gives_up_with_clear_error(fake, tmp_path):
    dest = tmp_path / "m.zip"
    with FakeServer(fake.zip_bytes) as server:
        with pytest.raises(maestro.DownloadError, match=r"failed 3 time\(s\).*instead of") as info:
            maestro.download(server.url, dest, len(fake.zip_bytes) + 1, progress=False, retries=2)
        assert len(server.requests) == 3
    assert server.url in str(info.value)
    assert not dest.exists() and not (tmp_path / "m.zip.part").exists()


def test_http_error_is_not_retried(fake, tmp_path):
    with FakeServer(fake.zip_bytes, plan=[{"status": 404}]) as server:
        with pytest.raises(maestro.DownloadError, match="HTTP 404.*check the URL"):
            maestro.download(server.url, tmp_path / "m.zip", progress=False)
        assert len(server.requests) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_corrupt_zip_is_named_and_deleted(fake, tmp_path, damage):
    data = {"garbage": b"<html>captive portal</html>", "truncated": fake.zip_bytes[: len(fake.zip_bytes) // 2],
            "flipped": corrupted(fake.zip_bytes)}[damage]
    zip_path = tmp_path / "m.zip"
    zip_path.write_bytes(data)
    with pytest.raises(maestro.CorruptZipError, match="not a valid zip file") as info:
        maestro.extract(zip_path, tmp_path / "out", progress=False)
    assert str(zip_path) in str(info.value)
    assert not zip_path.exists() and not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp folder left


def test_ensure_maestro_recovers_from_a_corrupt_zip_on_the_next_call(fake, tmp_path):
    root = tmp_path / "maestro-v3.0.0"  # a mirror without a digest (sha256=None): the size passes, extract catches the damage
    with FakeServer(fake.zip_bytes, plan=[{"body": corrupted(fake.zip_bytes)}]) as server:
        with pytest.warns(UserWarning, match="maestro-v3.0.0-midi.zip is not a valid zip file"):
            assert maestro.ensure_maestro(root, url=server.url, expected_size=len(fake.zip_bytes), progress=False,
                                     sha256=None) is None
        assert not (tmp_path / "maestro-v3.0.0-midi.zip").exists()
        assert maestro.ensure_maestro(root, url=server.url, expected_size=len(fake.zip_bytes), progress=False,
                                     sha256=None) == root
    assert len(maestro.read_metadata(root)) == len(PIECES)


def test_extract_is_idempotent_and_never_deletes_a_folder_it_did_not_make(fake, tmp_path):
    zip_path = tmp_path / "m.zip"
    zip_path.write_bytes(fake.zip_bytes)
    out = tmp_path / "out"
    (out / "2004").mkdir(parents=True)
    mine = out / "2004" / "my_recording.midi"  # the user's own file, in a folder without the marker
    mine.write_bytes(b"MThd mine")
    with pytest.raises(FileExistsError) as info:
        maestro.extract(zip_path, out, progress=False)
    msg = str(info.value)
    assert str(out) in msg and "2004" in msg and "nothing was deleted" in msg and "\n" not in msg
    assert mine.read_bytes() == b"MThd mine" and sorted(p.name for p in out.iterdir()) == ["2004"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip", "out"]  # no temp folder left
    hand = tmp_path / "hand"  # MAESTRO unzipped by hand: kept, and the error says to use it
    hand.mkdir()
    (hand / maestro.METADATA_CSV).write_text("by hand\n")
    with pytest.raises(FileExistsError, match=r"already holds a MAESTRO copy .*use it as it is"):
        maestro.extract(zip_path, hand, progress=False)
    assert (hand / maestro.METADATA_CSV).read_text() == "by hand\n"
    empty = tmp_path / "empty"  # an empty folder is used
    empty.mkdir()
    assert maestro.extract(zip_path, empty, progress=False) == empty
    assert (empty / maestro.METADATA_CSV).is_file() and (empty / maestro.EXTRACTED_MARKER).is_file()
    zip_path.unlink()
    assert maestro.extract(zip_path, empty, progress=False) == empty  # marker present: the zip is not needed
    with pytest.raises(FileNotFoundError, match="m.zip"):
        maestro.extract(zip_path, tmp_path / "elsewhere", progress=False)


def test_ensure_maestro_keeps_the_files_of_the_folder_it_is_given(fake, tmp_path):
    drive = tmp_path / "MyDrive"  # a parent folder, as find_maestro accepts, holding the user's files
    drive.mkdir()
    (drive / "notes.txt").write_text("mine")
    with FakeServer(fake.zip_bytes) as server:
        got = maestro.ensure_maestro(drive, url=server.url, expected_size=len(fake.zip_bytes), progress=False,
                                     sha256=fake.sha256)
    assert got == drive / maestro.MAESTRO_VERSION and (got / maestro.METADATA_CSV).is_file()
    assert (drive / "notes.txt").read_text() == "mine" and maestro.find_maestro(drive) == got
    partial = tmp_path / "hand" / maestro.MAESTRO_VERSION  # copied by hand, without the CSV: refused before downloading
    (partial / "2004").mkdir(parents=True)
    (partial / "2004" / "a.midi").write_bytes(b"MThd")
    with FakeServer(fake.zip_bytes) as server:
        with pytest.raises(FileExistsError, match="nothing was deleted"):
            maestro.ensure_maestro(partial, url=server.url, expected_size=len(fake.zip_bytes), progress=False,
                                   sha256=fake.sha256)
        assert server.requests == []
    assert (partial / "2004" / "a.midi").read_bytes() == b"MThd"


def test_file_url(fake, tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(fake.zip_bytes)
    dest = maestro.download(src.as_uri(), tmp_path / "copy.zip", len(fake.zip_bytes), progress=False)
    assert dest.read_bytes() == fake.zip_bytes
    with pytest.raises(maestro.DownloadError, match="check the path"):
        maestro.download((tmp_path / "absent.zip").as_uri(), tmp_path / "x.zip", progress=False)


def test_unreachable_host_gives_one_sentence(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/maestro.zip"
    with pytest.raises(ConnectionError) as info:
        maestro.download(url, tmp_path / "m.zip", progress=False)
    msg = str(info.value)
    assert msg.startswith("could not reach 127.0.0.1 (") and "no network? the embedded corpus is used instead" in msg
    assert "\n" not in msg and info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.warns(UserWarning, match="could not reach 127.0.0.1"):
        assert maestro.ensure_maestro(tmp_path / "maestro-v3.0.0", url=url, progress=False) is None
    with pytest.raises(maestro.DownloadError, match="could not reach"):
        maestro.ensure_maestro(tmp_path / "maestro-v3.0.0", url=url, progress=False, strict=True)


def test_metadata_errors_name_the_file(fake, tmp_path):
    assert maestro.find_maestro(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="maestro-v3.0.0.csv.*ensure_maestro"):
        maestro.read_metadata(tmp_path)
    csv_path = tmp_path / maestro.METADATA_CSV
    csv_path.write_text("canonical_composer,split\nBach,train\n")
    with pytest.raises(ValueError, match=r"maestro-v3.0.0.csv lacks column.*midi_filename"):
        maestro.read_metadata(tmp_path)


def test_missing_midi_files_are_skipped_with_a_warning(fake, tmp_path):
    zip_path = tmp_path / "m.zip"
    zip_path.write_bytes(fake.zip_bytes)
    root = maestro.extract(zip_path, tmp_path / "maestro-v3.0.0", progress=False)
    (root / PIECES[0][0]).unlink()
    with pytest.warns(UserWarning, match="1 MIDI file"):
        files = maestro.midi_files_with_split(root)
    assert len(files) == len(PIECES) - 1


def test_zip_layout_matches_maestro(fake):
    # guards the fixture itself: one top folder holding the CSV, like the real zip
    names = zipfile.ZipFile(io.BytesIO(fake.zip_bytes)).namelist()
    assert "maestro-v3.0.0/maestro-v3.0.0.csv" in names and all(n.startswith("maestro-v3.0.0/") for n in names)


def test_ensure_maestro_checks_the_published_sha256_by_default(fake, tmp_path):
    assert maestro.MAESTRO_ZIP_SHA256 == "70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c"
    assert "CC BY-NC-SA 4.0" in maestro.MAESTRO_LICENCE and "non-commercial" in maestro.MAESTRO_LICENCE
    root = tmp_path / "maestro-v3.0.0"
    with FakeServer(fake.zip_bytes) as server:  # the right size, but not the published bytes
        with pytest.raises(maestro.DownloadError, match="sha256 .* instead of 70470ee253295c8d"):
            maestro.ensure_maestro(root, url=server.url, expected_size=len(fake.zip_bytes), progress=False, strict=True)
    assert maestro.find_maestro(root) is None and not (tmp_path / "maestro-v3.0.0-midi.zip").exists()
