# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Download MAESTRO
#
# **Reads:** the internet (the MAESTRO v3.0.0 MIDI zip, about 56 MiB, from Google's Magenta storage).
# **Writes:** `maestro-v3.0.0/` in the data folder (about 1,300 performance MIDI files and the
# metadata CSV with the official train/validation/test split) and the zip beside it. The data folder
# is `data/` of the checkout, or in Colab `MyDrive/melody-forge/data` on your Google Drive (see
# `USE_DRIVE` below), where notebooks 02 and 03 find it.
#
# MAESTRO holds some 200 hours of virtuoso piano performances recorded on Yamaha Disklaviers:
# real timing, real dynamics, real pedalling. **Licence: [CC BY-NC-SA 4.0](https://creativecommons.org/licenses/by-nc-sa/4.0/)**
# (Google LLC; non-commercial, share alike): a model trained on it, and the music it makes, may not be
# used commercially, and its checkpoints say so in their summary. The download is checked against
# the zip's published size and sha256. Without a network (or with `MELODY_DOWNLOAD=0`, as
# in the test suite) nothing is downloaded and the later notebooks use the **embedded piano corpus**
# shipped in the repository (`data/embedded/`), so every notebook still runs. A MAESTRO folder
# you already have elsewhere (e.g. on Google Drive) can be named as the source instead:
# `data.source="/content/drive/MyDrive/maestro-v3.0.0"`.
#
# Everything here is restartable: an interrupted download resumes where it stopped, and a second
# run finds the extracted folder and does nothing.

# %%
# Settings. REPO_URL: the repository Colab runs (a fork: put its URL here). USE_DRIVE: in Colab, keep
# data/ and outputs/ in one folder on Google Drive (MyDrive/melody-forge), so every notebook finds what
# the previous one wrote; you are asked once to allow access. False: files stay in this runtime only.
REPO_URL = "https://github.com/melody-forge/melody-forge"
USE_DRIVE = True

import os
import subprocess
import sys

if "google.colab" in sys.modules:  # fetch the project and the few packages Colab lacks
    REPO = "/content/melody-forge"
    if not os.path.isdir(REPO):
        clone = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, REPO], capture_output=True, text=True)
        if clone.returncode:
            raise SystemExit(f"could not clone {REPO_URL} ({clone.stderr.strip()}): set REPO_URL at the top of this cell "
                             f"to your repository's address (e.g. your fork's) and run the cell again")
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["pretty_midi", "symusic"], check=True)  # torch, numpy, matplotlib, ipywidgets: Colab's own
    sys.path.insert(0, REPO)
    os.chdir(f"{REPO}/notebooks")

from melody_utils import workspace  # before anything else of the package: it sets where files go

print(workspace.setup(use_drive=USE_DRIVE))

# %%
from collections import defaultdict

from IPython.display import Markdown, display

from melody_utils.data import corpus, maestro

# %% [markdown]
# ## Download and extract
#
# `maestro.ensure_maestro()` downloads the zip with a progress bar (checking its size and sha256), unpacks it
# next to it and returns the folder. If the network is unreachable it says why in one warning and
# returns `None`. Set the environment variable `MELODY_DOWNLOAD=0` to skip the download altogether.

# %%
DOWNLOAD = os.environ.get("MELODY_DOWNLOAD", "1") == "1"
root = maestro.ensure_maestro() if DOWNLOAD else maestro.find_maestro()
print(f"MAESTRO: {root}\nlicence: {maestro.MAESTRO_LICENCE}" if root else
      f"MAESTRO is not available ({'the download failed, see above' if DOWNLOAD else 'downloads are off: MELODY_DOWNLOAD=0'}), "
      f"so the embedded piano corpus is used instead.")

# %% [markdown]
# ## What arrived
#
# With MAESTRO: performances, hours and distinct composers in each of its official splits (from the
# metadata CSV). The splits are by piece, so no composition is in two of them: the validation and
# test losses of notebook 03 measure music the model has never heard.
#
# Without it: the embedded piano corpus, 332 solo-piano works by 25 composers (about 23 hours,
# 780,000 notes) sequenced by Bernd Krueger for piano-midi.de, with expressive timing, dynamics
# and sustain pedal (licence CC BY-SA 3.0 DE). It is split by work: the movements of a sonata
# stay in one split.

# %%
if root is not None:
    stats = maestro.summary(maestro.read_metadata(root))
    rows = [f"| {split} | {s['performances']:,} | {s['hours']:.1f} | {s['composers']} |" for split, s in stats.items()]
    display(Markdown("| split | performances | hours | composers |\n|---|--:|--:|--:|\n" + "\n".join(rows)))

# %%
if root is None:
    pieces, meta = corpus.load_embedded("piano")
    by_composer = defaultdict(list)
    for notes, m in zip(pieces, meta):
        by_composer[m["composer"]].append((notes, m))
    rows = [f"| {c} | {len(ps)} | {len({m['work'] for _, m in ps})} | {sum(len(n) for n, _ in ps):,} | "
            f"{sum(n.seconds() for n, _ in ps) / 60:.1f} | {', '.join(sorted({m['split'] for _, m in ps}))} |"
            for c, ps in by_composer.items()]
    print(f"embedded piano corpus: {len(pieces)} pieces, {sum(map(len, pieces)):,} notes, {len(by_composer)} composers")
    display(Markdown("| composer | pieces | works | notes | minutes | splits |\n|---|--:|--:|--:|--:|---|\n" + "\n".join(rows)))
    works = defaultdict(set)
    for m in meta:
        works[m["work"]].add(m["split"])
    assert all(len(s) == 1 for s in works.values()), "a work spans two splits"

# %% [markdown]
# Next: `02_explore_and_quantize` looks inside these pieces and turns them into tokens.
