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
# # 2. Explore the music and quantize it into tokens
#
# **Reads:** the MIDI files of notebook 01 (`maestro-v3.0.0/` in the data folder: `data/`, or in
# Colab `MyDrive/melody-forge/data` on Google Drive), or the embedded piano corpus shipped in the
# repository (`data/embedded/`) when MAESTRO is absent.
# **Writes:** the token cache `cache/<source>-<bins>-<hash>.npz` in the data folder, which notebook
# 03 trains on (built here if missing, reloaded in a fraction of a second if not).
#
# A piece becomes a list of notes, each with a **pitch**, a **step** (seconds since the previous
# note began) and a **duration**. The model predicts ids, not seconds, so step and duration are
# *quantized* into bins. This notebook looks at the notes, compares two ways of binning time, lets
# you hear what each one does, and writes the tokens.

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
    # a SoundFont renderer for when symusic's does not play in tune (docs/audio.md); its pyaudio dependency is for live playback
    subprocess.run(pip + ["--no-deps", "tinysoundfont"], check=True)
    sys.path.insert(0, REPO)
    os.chdir(f"{REPO}/notebooks")

from melody_utils import workspace  # before anything else of the package: it sets where files go

print(workspace.setup(use_drive=USE_DRIVE))

# %%
from pathlib import Path

import numpy as np
from IPython.display import Markdown, display

from melody_utils.display import audio, plots
from melody_utils.data import corpus, maestro
from melody_utils.music import quantize, tokens
from melody_utils.config import get_config

cfg = get_config()  # the preset: $MELODY_PRESET, else "small" (see notebook 03)
print(f"preset {cfg.preset}: source {cfg.data.source!r}, {cfg.data.bins} bins")

# %% [markdown]
# ## The pieces
#
# The raw notes, before any quantization: all of an embedded corpus, or a sample of MAESTRO
# (parsing every performance takes a minute or two; notebook 03's cache does it once).
# Sustain-pedal lengthening is applied, as for training: a pedalled note sounds until the pedal lifts.

# %%
SAMPLE_FILES = 100  # MIDI files looked at here when the source is MAESTRO or a folder
source = corpus.resolve_source(cfg.data)
if corpus.embedded_name(source):  # "piano" (the default) or "chorales"
    pieces, meta = corpus.load_embedded(source, sustain=cfg.data.sustain)
else:  # MAESTRO (composer and title from its CSV) or a folder of MIDI files: a sample
    rows = (maestro.midi_files_with_split(maestro.find_maestro()) if source == "maestro"
            else [(p, "", "", p.stem) for p in corpus.list_midi_files(source)])[:SAMPLE_FILES]
    pieces, kept, skipped = corpus.parse_files([r[0] for r in rows], sustain=cfg.data.sustain)
    meta = [{"name": Path(p).stem, "composer": c, "title": t} for p, _, c, t in rows if str(p) in kept]
print(f"{source}: {len(pieces)} pieces, {sum(map(len, pieces)):,} notes")

# %% [markdown]
# A piano roll of one piece: time runs left to right, pitch bottom to top (the C's are named),
# colour is how hard the key was struck (velocity).

# %%
PIECE = "deb_clai"  # Debussy's Clair de lune in the embedded piano corpus; otherwise the first piece is shown
i = next((k for k, m in enumerate(meta) if m["name"] == PIECE), 0)
piece = pieces[i]
print(f"{meta[i]['title']} ({meta[i]['composer'] or 'composer unknown'}): {len(piece)} notes, {piece.seconds():.0f} s")
plots.piano_roll(piece, title=meta[i]["title"], seconds=30)

# %% [markdown]
# ## Binning time: the seed's grid or log bins
#
# The seed notebook used a **linear grid**: steps of 0.05, 0.10, ... 1.05 s and durations of
# 0.05 ... 1.45 s. It has no bin for a step of exactly 0, so every chord becomes a 50 ms arpeggio,
# and it spends as many bins on 1.0-1.05 s as on 0.05-0.10 s, although the ear hears a 50 ms error
# on a short note and not on a long one.
#
# **Log bins** (the default, `data.bins = "log"`) keep an exact-0 step bin for chords and space the
# others evenly in log time between percentiles of the training data, so the error is a similar
# *fraction* of every value. Below: the histograms of pitch, step and duration over the pieces,
# with each scheme's bin edges as dashed red lines.

# %%
log_vocab = corpus.make_vocab(cfg.override(**{"data.bins": "log"}).data, pieces)  # fitted on these pieces
seed_vocab = tokens.seed_vocab()
plots.token_histograms(pieces, step_bins=log_vocab.step_bins, dur_bins=log_vocab.dur_bins,
                       title=f"log bins: {len(log_vocab.step_bins)} step, {len(log_vocab.dur_bins)} duration")

# %%
plots.token_histograms(pieces, step_bins=seed_vocab.step_bins, dur_bins=seed_vocab.dur_bins,
                       title=f"seed grid: {len(seed_vocab.step_bins)} step, {len(seed_vocab.dur_bins)} duration")

# %% [markdown]
# (The piano corpus is sequenced with expressive tempo, so its steps and durations spread around
# the note values; the chorales, rendered from scores, sit on a few exact ones: spikes.)
#
# The timing error each scheme causes: |seconds − bin centre| over every note, as the median and
# the 95th percentile in milliseconds.

# %%
steps = np.concatenate([p.step[1:] for p in pieces])  # the first note of a piece has no previous note
durations = np.concatenate([p.duration for p in pieces])
rows = []
for name, v in (("log bins", log_vocab), ("seed grid", seed_vocab)):
    s, d = quantize.timing_error_ms(steps, v.step_bins), quantize.timing_error_ms(durations, v.dur_bins)
    rows.append(f"| {name} | {s['median_ms']:.1f} | {s['p95_ms']:.1f} | {d['median_ms']:.1f} | {d['p95_ms']:.1f} |")
display(Markdown("| bins | step median (ms) | step p95 (ms) | duration median (ms) | duration p95 (ms) |\n"
                 "|---|--:|--:|--:|--:|\n" + "\n".join(rows)))

# %% [markdown]
# ## Listen: before and after quantization
#
# The first seconds of the piece as played, then after a round trip through each scheme's tokens
# (notes → ids → notes). Listen for the chords: the seed grid rolls them, 50 ms per note. Its version
# also runs shorter: the grid cuts every gap between onsets to at most 1.05 s and every note to
# 1.45 s, and Clair de lune's slow opening has longer ones. The seed's tokens carry
# no velocity, so that version plays at one loudness; the log tokens keep it in
# `data.velocity_bins` uniform bins (16 by default; a corpus without dynamics, like the chorales,
# gets none). The three clips are brought to the **same loudness** (the same RMS level) before they
# play, so that what differs is the timing and the dynamics, not the volume: notes that all share
# one velocity would otherwise play louder once the player scales each clip to full volume.
# The velocity error those bins cause, in MIDI velocity units (1-127):

# %%
verr = tokens.velocity_error(np.concatenate([p.velocity for p in pieces]), cfg.data.velocity_bins)
print(f"{cfg.data.velocity_bins} velocity bins: mean error {verr['mean']:.1f}, p95 {verr['p95']:.0f}, max {verr['max']:.0f}")

# %%
PASSAGE_S = 15  # seconds to listen to
passage = piece[(piece.start < piece.start[0] + PASSAGE_S) & log_vocab.in_range(piece)]
t0 = float(passage.start[0])
versions = {"as played": passage,
            "log bins": log_vocab.decode(log_vocab.encode(passage), t0=t0),
            "seed grid": seed_vocab.decode(seed_vocab.encode(passage), t0=t0)}
fig, axes = plots.new_figure(len(versions), 1, figsize=(12, 8))
for ax, (name, notes) in zip(axes, versions.items()):
    plots.piano_roll(notes, ax=ax, title=name, colorbar=False)
fig

# %%
rendered = {name: audio.synthesize_named(notes) for name, notes in versions.items()}
equal = audio.equal_loudness({name: wave for name, (wave, _) in rendered.items()})
for name, (_, synth) in rendered.items():
    print(f"{name} (at {audio.rms_db(equal[name]):.0f} dB RMS, like the others)")
    audio.listen(equal[name], synth, normalize=False)

# %% [markdown]
# ## Build the token cache
#
# `corpus.prepare` parses every piece of the source (in parallel, with a progress bar; a broken
# file is skipped and named), splits the corpus by piece (the piano corpus's split by work,
# MAESTRO's official split, or a folder's metadata.csv or train/validation/test subfolders),
# fits the log bins on the **training** pieces only, and writes all tokens to one `.npz` file keyed
# by the settings that shaped it. A second call with the same settings reloads it instantly.

# %%
cache = corpus.prepare(cfg.data)
print(f"{cache.path}\n{cache.report.summary()}")
print({split: len(cache.piece_indices(split)) for split in corpus.SPLITS}, "pieces per split")
print(f"tokens {cache.tokens.shape}: one row per note, columns {cache.vocab.fields} with "
      f"{dict(zip(cache.vocab.fields, cache.vocab.sizes))} ids")
assert cache.tokens.shape[1] == len(cache.vocab.sizes) and len(cache.piece_indices("train")) > 0

# %% [markdown]
# The first notes of a training piece as tokens, and decoded back into seconds:

# %%
first = int(cache.piece_indices("train")[0])
print(cache.pieces[first]["title"])
print(cache.piece_tokens(first)[:6])
notes = cache.notes(first)[:6]
print("pitch", notes.pitch, "\nstep (s)", notes.step.round(3), "\nduration (s)", notes.duration.round(3))

# %% [markdown]
# Next: `03_train` trains an LSTM on these tokens.
