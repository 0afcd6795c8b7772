"""SoundFonts: which one plays, and the piano SoundFont fetched once (in Colab, onto Google Drive).

A SoundFont (``.sf2``/``.sf3``) holds the recorded samples a SoundFont synthesizer plays
(:mod:`melody_utils.display.audio`). :func:`find_soundfont` picks one, best first:

1. the path asked for (``--soundfont PATH``, ``sf2_path=``; a missing file is an error naming it),
2. ``$MELODY_SOUNDFONT``,
3. the piano SoundFont :func:`fetch_piano_soundfont` stored in the data folder
   (``soundfonts/`` there; in Colab with ``USE_DRIVE`` on Google Drive, so it is fetched once),
4. a General MIDI SoundFont installed system-wide (:data:`SYSTEM_SOUNDFONTS`, e.g. Debian's
   ``fluid-soundfont-gm``),
5. ``TimGM6mb.sf2``, the small General MIDI SoundFont inside pretty_midi's wheel: always there.

:data:`PIANO` is a sampled grand piano (36 MB download, 113 MB unpacked); the archive's sha256 is
checked before anything is unpacked, and the SoundFont is written atomically, so a file under its
name is always complete.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..data.maestro import download
from ..files import atomic_write_bytes
from ..workspace import data_dir

SOUNDFONT_ENV_VAR = "MELODY_SOUNDFONT"  # a SoundFont to play with, unless a call names one
SOUNDFONT_SUFFIXES = (".sf2", ".sf3")
PRETTY_MIDI_SOUNDFONT = "TimGM6mb.sf2"  # General MIDI, 6 MB, inside the pretty_midi package


@dataclass(frozen=True)
class RemoteSoundFont:
    """A SoundFont published inside an archive, pinned by the archive's sha256."""

    name: str  # in words
    url: str
    sha256: str  # of the archive, as published (two independent pins agree; docs/audio.md)
    member: str  # the SoundFont's file name inside the archive
    licence: str


PIANO = RemoteSoundFont(
    name="YDP Grand Piano (a Yamaha Disklavier Pro, 5 velocity layers)",
    url="https://freepats.zenvoid.org/Piano/YDP-GrandPiano/YDP-GrandPiano-SF2-20160804.tar.bz2",
    sha256="d243dc3e182a60df2a16e92828c1821cf3eb5748b45e2e2bdcfa9cf7af056026",
    member="YDP-GrandPiano-20160804.sf2",
    licence="CC BY 3.0: samples by Zenph Studios, SoundFont by FreePats (freepats.zenvoid.org)",
)
# General MIDI SoundFonts that Linux packages install, best first (all sound better than TimGM6mb).
SYSTEM_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
)


def soundfont_folder() -> Path:
    """Where fetched SoundFonts are kept: ``soundfonts/`` in the data folder."""
    return data_dir() / "soundfonts"


def pretty_midi_soundfont() -> Path:
    """The General MIDI SoundFont bundled with pretty_midi."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / PRETTY_MIDI_SOUNDFONT
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the pretty_midi install lacks its SoundFont; reinstall pretty_midi "
                                f"or pass a SoundFont (--soundfont PATH)")
    return path


def installed_soundfonts() -> list[Path]:
    """SoundFonts on this machine, best first (see the module docstring; pretty_midi's always last)."""
    env = os.environ.get(SOUNDFONT_ENV_VAR, "").strip()
    candidates = [Path(env).expanduser()] if env else []
    candidates += [soundfont_folder() / PIANO.member, *map(Path, SYSTEM_SOUNDFONTS)]
    found = [p for p in candidates if p.is_file()]
    try:
        found.append(pretty_midi_soundfont())
    except FileNotFoundError:
        pass
    return list(dict.fromkeys(found))


def find_soundfont(path=None) -> Path:
    """``path`` when given (FileNotFoundError/ValueError naming it), else the best installed SoundFont."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--soundfont {path}: file not found; pass a .sf2 or .sf3 SoundFont file")
        if path.suffix.lower() not in SOUNDFONT_SUFFIXES:
            raise ValueError(f"--soundfont {path} is not a SoundFont; pass a .sf2 or .sf3 file")
        return path
    found = installed_soundfonts()
    if not found:
        raise FileNotFoundError("no SoundFont on this machine; pass one with --soundfont PATH (a .sf2 or .sf3 file)")
    return found[0]


def fetch_piano_soundfont(folder=None, font: RemoteSoundFont = PIANO, progress: bool = True) -> Path:
    """The piano SoundFont in ``folder`` (default :func:`soundfont_folder`), downloaded and unpacked once.

    When ``folder/<font.member>`` exists it is returned at once. Otherwise the archive is
    downloaded beside it (resumable), must match ``font.sha256`` (else :class:`DownloadError`
    after the retries, and nothing is unpacked), its SoundFont is written atomically into place,
    and the archive is deleted.
    """
    folder = Path(folder) if folder is not None else soundfont_folder()
    target = folder / font.member
    if target.is_file():
        return target
    archive = folder / Path(font.url.split("?")[0]).name
    download(font.url, archive, progress=progress, sha256=font.sha256)
    try:
        _extract_member(archive, font.member, target)
    finally:
        archive.unlink(missing_ok=True)
    return target


def _extract_member(archive: Path, member: str, target: Path) -> None:
    """Copy the archive's member named ``member`` (in any folder of it) to ``target``, atomically."""
    try:
        with tarfile.open(archive) as tar:
            info = next((m for m in tar.getmembers() if m.isfile() and Path(m.name).name == member), None)
            if info is None:
                raise ValueError(f"{archive} holds no {member}; is it the right archive?")
            with tar.extractfile(info) as src:
                atomic_write_bytes(target, lambda tmp: _copy(src, tmp))
    except tarfile.TarError as exc:
        raise ValueError(f"{archive} is not a readable archive ({exc}); delete it and run again") from None


def _copy(src, tmp) -> None:
    with open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def colab_sound(progress: bool = True) -> str:
    """In Colab: fetch the piano SoundFont once and say where it is (a failure is said in the line, and
    the next best SoundFont plays). Elsewhere nothing is downloaded: ``""``."""
    from ..workspace import in_colab

    if not in_colab():
        return ""
    try:
        return f"piano SoundFont: {fetch_piano_soundfont(progress=progress)} ({PIANO.licence})"
    except (ConnectionError, ValueError, OSError) as exc:
        return f"the piano SoundFont could not be fetched ({exc}); the best SoundFont here plays instead"
