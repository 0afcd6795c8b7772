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
# # 4. Generate music and listen
#
# **Reads:** the newest model notebook 03 trained (else the shipped one) and its token cache. **Writes:**
# `improved_generated_output.midi` and `.wav` in the outputs folder, then a numbered take per **Generate** press.
# Run the first three cells to hear a piece; how it works, the settings and the sliders come after the player.

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
import pretty_midi
from IPython.display import display

from melody_utils.display import audio, plots, soundfonts
from melody_utils.data import corpus
from melody_utils.evaluate import report as metrics, originality, sweep
from melody_utils.train import runs
from melody_utils.generate import sample, primer as uploads
from melody_utils.generate.controls import Controls
from melody_utils.generate.settings import SamplingSettings
from melody_utils.music import scales
from melody_utils.notebook import widgets
from melody_utils.model.checkpoint import composer_names, load_checkpoint, training_summary
from melody_utils.config import get_config

PRESET = None  # None: $MELODY_PRESET or "small" (the sampling defaults and the outputs folder; the model brings its own)
cfg = get_config(PRESET)
s = cfg.sample
checkpoint, about = runs.find_checkpoint(cfg.train.out_dir)
model, vocab, train_cfg, state = load_checkpoint(checkpoint)
cache = corpus.prepare(train_cfg.data, vocab=vocab)  # the corpus it was trained on: primers and the originality check
print(f"using {about}\ntraining data licence: {training_summary(state)['licence'] or 'not recorded'}")
print("\n".join(filter(None, [soundfonts.colab_sound(), audio.describe_sound()])))  # Colab: a piano SoundFont, once

# %%
held_out_primer = cache.notes(cache.held_out_piece())[: sample.primer_length(model, s.primer_notes)]
settings = SamplingSettings.from_config(s)  # temperature, top-k, top-p, length, seed, piece memory, controls
generate_fn = sample.model_generate_fn(model, vocab.on_grid() if s.bin_centres else vocab, settings)
report = originality.notes_report(originality.OriginalityIndex.for_cache(cache), vocab)
result = widgets.generate_and_render(generate_fn, settings, held_out_primer, s.output, originality=report)
audio.listen(result["wave"], result["synth"])
display(widgets.download_widget(result["midi_path"]), widgets.download_widget(result["wav_path"]))
print(result["originality"])
result["figure"]

# %% [markdown]
# ## What you just heard
#
# **Reads:** the newest checkpoint of notebook 03 (`ckpt_best.pt` of the newest run in the outputs
# folder: `outputs/`, or in Colab `MyDrive/melody-forge/outputs` on Google Drive, see `USE_DRIVE`
# above), else the shipped model (`data/pretrained/piano_lstm.pt`), and the token cache it was
# trained on, for primers (rebuilt if missing) and the originality check; optionally a MIDI file
# of your own as the primer. The lines above name the checkpoint, what it was trained on (and that
# data's licence) and the SoundFont that plays. **Writes:** `improved_generated_output.midi` and
# `improved_generated_output.wav` (the same music, 44.1 kHz stereo), `controlled_output.midi` (the
# controls at work) and a numbered take per press of **Generate** below (`..._take1.midi` and
# `.wav`, then `_take2`, ...; an earlier take is never overwritten).
#
# Generation feeds a few notes of a piece (the **primer**, here the start of a held-out piece: music
# the model never trained on) to the model, then samples one note at a time: its pitch, then its step
# and duration, each drawn from the model's probabilities reshaped by three knobs. **Temperature**
# divides the logits (below 1: safer, above 1: wilder); **top-k** keeps only the k likeliest ids
# (0 = off); **top-p** keeps the smallest set of ids holding that much probability (1 = off). The
# **piece memory** mixes in what the piece has played so far: when the last notes repeat earlier ones,
# the notes that followed them there become likelier, so themes come back as in composed music (0 =
# off, 1 = as fitted on held-out pieces, up to 4 = more repeats; `sample.memory` is 1 in the real presets).
# The preset gives these defaults; the line below prints them.
#
# The player plays the whole piece; the line above it names the synthesizer and the SoundFont. In
# Colab the first run fetches a sampled grand piano SoundFont (36 MB, checked by its sha256) into
# the data folder on Drive, once; offline the best SoundFont on the machine plays, and without a
# SoundFont renderer a built-in numpy piano model. The originality line: the longest run of notes
# copied from the training corpus (8-note sequences compared, transpositions included) and the share
# of the piece's 8-note sequences found there; music the model makes up scores about 0 on both. Each
# step, duration and velocity is played inside its bin as the training corpus played it
# (`sample.bin_centres = True`: the bins' centres).

# %%
print(f"preset {cfg.preset}: temperature {s.temperature}, top-k {s.top_k or 'off'}, top-p {s.top_p}, "
      f"memory {s.memory}, {s.n_notes} notes, seed {s.seed}")
midi_notes = sum(len(instrument.notes) for instrument in pretty_midi.PrettyMIDI(str(result["midi_path"])).instruments)
level = audio.rms_db(result["wave"])
print(f"{midi_notes} notes in the MIDI file, {result['notes'].seconds():.1f} s, audio level {level:.1f} dB, "
      f"{result['wave'].shape[1]} channels")
assert midi_notes > 0, f"{result['midi_path']} holds no notes"
assert level > -50, f"the audio is silent ({level:.1f} dB)"
assert audio.read_wav(result["wav_path"])[1] == 44100, "the WAV file is not 44.1 kHz"

# %% [markdown]
# ## Primers
#
# The first notes of a **held-out** piece (from the test split, or validation when a small corpus
# has no test piece), of a training piece, or **none** (the model starts from a single middle C). The
# generated file holds only the new notes, unless you tick **keep the primer in the output** in the
# generator below.
#
# **Your own MIDI** (`.mid` or `.midi`) can be the primer: the music then continues from the end of
# your file, as if you asked "what comes next?". `PRIMER_SECONDS = None` primes with the whole file
# (at most its last 2,048 notes); a number primes with its last that many seconds. Outside Colab,
# use the **Upload MIDI** button of the generator below. In Colab, set `UPLOAD_IN_COLAB = True` and
# run this cell: a file dialog opens and the cell waits for your file. A file that is not MIDI is
# named in one line and skipped.

# %%
UPLOAD_IN_COLAB = False  # True: in Colab, this cell asks for your MIDI file
PRIMER_SECONDS = None  # None: your whole file primes the model; e.g. 20: its last 20 seconds
n_primer = sample.primer_length(model, s.primer_notes)
seen = int(cache.piece_indices("train")[0])
primers = {f"held-out: {cache.pieces[cache.held_out_piece()]['title']}": held_out_primer,
           f"training: {cache.pieces[seen]['title']}": cache.notes(seen)[:n_primer],
           "none": None}
load_primer = uploads.PrimerLoader(vocab, sustain=train_cfg.data.sustain, seconds=PRIMER_SECONDS)
primers = {**widgets.colab_upload(load_primer, ask=UPLOAD_IN_COLAB), **primers}
print(list(primers))

# %% [markdown]
# ## The controls at work
#
# The same settings with a few controls on: D minor (hard), pitches C3-C6 (48-84), 20 seconds of
# music. The widgets below set the same values; here the notebook checks that the key and the range
# hold for every note.

# %%
steer = settings.replace(controls=Controls(key="D minor", pitch_range=(48, 84)), seconds=20.0)
controlled = widgets.generate_and_render(generate_fn, steer, held_out_primer, Path(s.output).with_name("controlled_output.midi"),
                                         originality=report)
pitch = controlled["notes"].pitch
in_key = np.isin(pitch % 12, scales.parse_key("D minor")).mean()
print(f"{steer.controls.describe()}: {len(pitch)} notes, {controlled['notes'].seconds():.1f} s, {in_key:.0%} in key, "
      f"pitches {pitch.min()}-{pitch.max()}\n{controlled['originality']}")
assert in_key == 1 and 48 <= pitch.min() and pitch.max() <= 84, "a hard key or a pitch range was left"
audio.listen(controlled["wave"], controlled["synth"])

# %% [markdown]
# ## Try your own settings: takes
#
# Move the sliders, pick a primer (or upload your own MIDI; and a composer, when the model was
# trained with composers) and press **Generate**: each press adds a **take**, a new MIDI file and its
# WAV (`improved_generated_output_take1.midi` and `.wav`, then `_take2`, ...), and shows its piano roll
# and originality line. The **takes** list below the button plays any take again and offers both of its
# files for download, so you can compare takes and keep the ones you like. The same seed with the same
# settings gives the same piece; change the seed for another take. Nothing runs until you press the
# button. The **piece memory** slider sets how strongly the piece repeats what it has played (0 = off,
# 1 = as fitted).
#
# Under **controls**, each at its starting value changes nothing:
# - **key**: keep to a key; out-of-key pitches are removed (**key strength** 0, hard) or lowered by
#   that many nats (soft: an occasional chromatic note stays possible).
# - **pitch range**: MIDI pitches (C4 = 60) the music never leaves.
# - **density**: a target in notes per second (chord notes count); 0 = the model's own.
# - **× temperature** for pitch, timing (step and duration) and velocity: multiplies the global one.
# - **repeat guard**: nats taken from notes that would continue a loop (about 3 stops most loops).
# - **seconds**: generate this many seconds of music instead of a number of notes (several minutes
#   are fine: the cost per note is constant).

# %%
generator = widgets.make_generator_ui(generate_fn, primers, s.output, defaults=s, composers=composer_names(model),
                                      load_primer=load_primer, originality=report)
generator

# %% [markdown]
# ## Which settings sound best?
#
# Instead of guessing, let held-out music decide. For each temperature and top-p of a small grid, the
# model continues held-out primers a few times; each setting is scored by how close its pieces'
# statistics (pitch range, intervals, rhythm, loops, ...) come to held-out excerpts of the same length
# (**mean OA**, the overlap of the distributions, 1 = the same) and by how often its pieces get stuck
# in a loop or on one pitch (**degenerate**). The suggestion is the setting with the highest mean OA
# among those that degenerate no more often than the held-out excerpts themselves plus 10 points.
# Under the `tiny` preset the grid is 2 x 2 with 2 short pieces per setting: it runs in seconds and its
# numbers mean little.

# %%
tiny = cfg.preset == "tiny"
grid = {"temperatures": [0.85, 1.0], "top_ps": [0.9, 1.0]} if tiny else True  # True: 4 temperatures x 4 top-p values
evaluation = metrics.evaluate_checkpoint(checkpoint, cache=cache, n_samples=2 if tiny else 8,
                                         sampling={"n_notes": 32} if tiny else None, sweep=grid, likelihood=False)
best = evaluation["sweep"]["best"]
print(sweep.describe_best(evaluation["sweep"]))
assert best is not None and 0 <= best["mean_oa"] <= 1, "the sweep scored no setting"

# %% [markdown]
# Left: mean OA per temperature, one line per top-p (higher is closer to held-out music). Right: the
# share of degenerate pieces, with the ceiling (dashed) that a suggested setting must stay under.
# The star marks the suggestion.

# %%
plots.plot_sweep(evaluation["sweep"])

# %% [markdown]
# Feature by feature, pieces generated with the model's default settings (orange) against held-out
# excerpts (blue); each panel's title gives its overlap area.

# %%
pieces = evaluation["piece_stats"]
plots.compare_distributions(pieces["generated"], pieces["reference"])

# %% [markdown]
# To hear the suggestion, press the button below: it sets the **temperature** and **top-p** sliders of
# the generator above to the suggested values (top-k stays as it is: the sweep used the same top-k);
# then press **Generate** there. The statistics only say that the music is *like* the held-out
# pieces; compare a few seeds of the suggested setting with its neighbours in the grid and let your
# ears decide.

# %%
widgets.apply_setting_button(generator, best)
