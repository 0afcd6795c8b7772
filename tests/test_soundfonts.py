"""Which SoundFont plays, and the piano SoundFont fetched once with its checksum (a local file stands
in for the download: no network)."""

import hashlib
import io
import tarfile
from dataclasses import replace

import pytest

from melody_utils.data import maestro
from melody_utils.display import soundfonts


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(maestro, "RETRY_WAIT_S", 0.0)


def stand_in_archive(folder, member_bytes=b"RIFF....sfbk stand-in SoundFont", inner=soundfonts.PIANO.member):
    """A .tar.bz2 laid out like the published one (a folder holding the SoundFont): (its file:// font, its bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for name, data in ((f"YDP-GrandPiano-SF2-20160804/{inner}", member_bytes),
                           ("YDP-GrandPiano-SF2-20160804/README", b"read me")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = folder / "YDP-GrandPiano-SF2-20160804.tar.bz2"
    path.write_bytes(buf.getvalue())
    font = replace(soundfonts.PIANO, url=path.as_uri(), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    return font, member_bytes


def test_the_piano_soundfont_is_fetched_checked_unpacked_and_kept(tmp_path):
    font, data = stand_in_archive(tmp_path)
    folder = tmp_path / "drive" / "soundfonts"
    path = soundfonts.fetch_piano_soundfont(folder, font, progress=False)
    assert path == folder / soundfonts.PIANO.member and path.read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == [soundfonts.PIANO.member]  # the archive is gone, no temp file
    (tmp_path / "YDP-GrandPiano-SF2-20160804.tar.bz2").unlink()  # "offline" now: the kept file is enough
    assert soundfonts.fetch_piano_soundfont(folder, font, progress=False) == path


def test_a_download_with_the_wrong_checksum_is_refused_and_nothing_is_unpacked(tmp_path):
    font, _ = stand_in_archive(tmp_path)
    folder = tmp_path / "soundfonts"
    with pytest.raises(maestro.DownloadError, match="sha256"):
        soundfonts.fetch_piano_soundfont(folder, replace(font, sha256="0" * 64), progress=False)
    assert not (folder / soundfonts.PIANO.member).exists()


def test_an_archive_without_the_soundfont_is_named(tmp_path):
    font, _ = stand_in_archive(tmp_path, inner="Other.sf2")
    with pytest.raises(ValueError, match=f"holds no {soundfonts.PIANO.member}"):
        soundfonts.fetch_piano_soundfont(tmp_path / "sf", font, progress=False)


def test_the_published_piano_is_pinned_by_its_sha256():
    assert soundfonts.PIANO.url.startswith("https://freepats.zenvoid.org/")
    assert len(soundfonts.PIANO.sha256) == 64 and int(soundfonts.PIANO.sha256, 16) >= 0
    assert "CC BY 3.0" in soundfonts.PIANO.licence


def test_find_soundfont_prefers_the_asked_one_then_env_then_the_fetched_piano(tmp_path, monkeypatch):
    monkeypatch.delenv(soundfonts.SOUNDFONT_ENV_VAR, raising=False)
    monkeypatch.setattr(soundfonts, "SYSTEM_SOUNDFONTS", ())
    monkeypatch.setattr(soundfonts, "soundfont_folder", lambda: tmp_path / "data" / "soundfonts")
    assert soundfonts.find_soundfont() == soundfonts.pretty_midi_soundfont()  # nothing else here
    piano = tmp_path / "data" / "soundfonts" / soundfonts.PIANO.member
    piano.parent.mkdir(parents=True)
    piano.write_bytes(b"x")
    assert soundfonts.find_soundfont() == piano
    mine = tmp_path / "mine.sf3"
    mine.write_bytes(b"x")
    monkeypatch.setenv(soundfonts.SOUNDFONT_ENV_VAR, str(mine))
    assert soundfonts.find_soundfont() == mine
    asked = tmp_path / "asked.sf2"
    asked.write_bytes(b"x")
    assert soundfonts.find_soundfont(asked) == asked
    assert soundfonts.installed_soundfonts() == [mine, piano, soundfonts.pretty_midi_soundfont()]


def test_a_bad_soundfont_argument_is_one_line_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="--soundfont .*missing.sf2: file not found"):
        soundfonts.find_soundfont(tmp_path / "missing.sf2")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ValueError, match="--soundfont .*notes.txt is not a SoundFont"):
        soundfonts.find_soundfont(text)


def test_colab_sound_fetches_only_in_colab(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(soundfonts, "fetch_piano_soundfont", lambda **kw: calls.append(kw) or tmp_path / "p.sf2")
    monkeypatch.setenv("MELODY_COLAB", "0")
    assert soundfonts.colab_sound() == "" and calls == []
    monkeypatch.setenv("MELODY_COLAB", "1")
    assert soundfonts.colab_sound() == f"piano SoundFont: {tmp_path / 'p.sf2'} ({soundfonts.PIANO.licence})"

    def offline(**kw):
        raise maestro.DownloadError("could not reach freepats.zenvoid.org")

    monkeypatch.setattr(soundfonts, "fetch_piano_soundfont", offline)
    assert "could not be fetched (could not reach freepats" in soundfonts.colab_sound()
