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
# # 3. Train the model
#
# **Reads:** the token cache of notebook 02 (`cache/` in the data folder; built here if missing) and
# MAESTRO as notebook 01 downloaded it, downloaded here when it is missing (the embedded piano corpus
# when it cannot be, as the output says). The data folder is `data/`, or in Colab
# `MyDrive/melody-forge/data` on Google Drive (`USE_DRIVE` below).
# **Writes:** a run folder in the outputs folder (`outputs/`, or in Colab `MyDrive/melody-forge/outputs`):
# `ckpt_last.pt` (every minute and at the end, to resume from), `ckpt_best.pt` (the lowest validation
# loss, for notebook 04) and `history.json` (the losses, every epoch).
#
# The model is a stateful LSTM that reads notes one at a time and predicts the next one: its pitch
# first, then its step and duration knowing that pitch. It learns from every position of each
# training window, and is scored on the validation pieces, which it never trains on.

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
import os
from pathlib import Path

from IPython.display import display

from melody_utils.model import checkpoint
from melody_utils.data import corpus, maestro
from melody_utils.train import estimate, runs, loop as train
from melody_utils.evaluate import likelihood, memory_fit
from melody_utils.display import plots
from melody_utils.config import get_config

# %% [markdown]
# ## A GPU, and the preset that fits it
#
# One config holds every setting; a **preset** sets the sizes. `PRESET = None` follows the device:
# `colab` on a GPU (MAESTRO, a 3-layer LSTM of 512 units, velocity modelled), `small` on a CPU (a few
# minutes on a laptop); the environment variable `MELODY_PRESET` wins when set (the tests set
# `tiny`). Set `PRESET` to choose yourself (`"tiny"`, `"small"`, `"colab"`, `"full"`). Any single
# setting can be changed too, e.g. `get_config(preset, **{"train.epochs": 10})`.

# %%
PRESET = None  # None: colab on a GPU, small on a CPU ($MELODY_PRESET wins); or "tiny", "small", "colab", "full"
device = estimate.detect_device()
if device.kind == "cpu":
    print(f"No GPU: training runs on {device.name}. On Colab, pick one with Runtime > Change runtime type > "
          "T4 GPU (or better), then run the notebook again from the top.")
preset, why = estimate.preset_for(device, PRESET)
cfg = get_config(preset)
print(f"preset {cfg.preset} ({why}): {cfg.model.arch} LSTM, {cfg.model.layers} x {cfg.model.hidden} units, "
      f"windows of {cfg.data.window} notes, batch {cfg.train.batch_size}, {cfg.train.epochs} epochs"
      + (f" (at most {cfg.train.max_steps} steps)" if cfg.train.max_steps else ""))

# %% [markdown]
# ## The data
#
# MAESTRO when the data folder holds it; if it does not, it is downloaded now (56 MiB; set the
# environment variable `MELODY_DOWNLOAD=0` to skip that, as the tests do). Without it the model
# trains on the embedded piano corpus, and the line below says so. Then the token cache of notebook 02,
# built now if it is not there yet.

# %%
if cfg.data.source in ("auto", "maestro") and maestro.find_maestro() is None and os.environ.get("MELODY_DOWNLOAD", "1") == "1":
    maestro.ensure_maestro()
source = corpus.resolve_source(cfg.data)
print(f"training on {({'maestro': 'MAESTRO', 'piano': 'the embedded piano corpus', 'chorales': 'the embedded chorales'}).get(source, source)}"
      + (" (MAESTRO is not in the data folder)" if source != "maestro" and cfg.data.source == "auto" else ""))
cache = corpus.prepare(cfg.data)
print({split: len(cache.piece_indices(split)) for split in corpus.SPLITS}, f"pieces, {len(cache.tokens):,} notes")

# %% [markdown]
# ## Which run
#
# `RUN = "continue"` carries on with the newest run in the outputs folder (a run stopped by a
# disconnect resumes where it stopped; one that is finished says so); when there is none, the run
# starts in the outputs folder itself. `RUN = "new"` starts a new run in a new folder
# (`run-YYYYmmdd-HHMM`), so an earlier run is never overwritten. A run of another preset cannot be
# continued: the line below then says what differs and what to set.

# %%
RUN = "continue"  # "continue": the newest run in the outputs folder; "new": a new run in a new folder
try:
    cfg, about = runs.choose_run(cfg, cache.vocab, RUN)
except ValueError as exc:
    raise SystemExit(f"error: {exc}") from None
print(about)
print(estimate.training_estimate(cfg, cache, device))

# %% [markdown]
# ## Train
#
# One progress bar for the whole run, a line per epoch, and the plot below, redrawn after every
# epoch: the **train** loss (averaged over the epoch) and the **validation** loss, in nats per note
# summed over pitch, step and duration. A model guessing uniformly would score the sum of the logs
# of the vocabulary sizes.

# %%
uniform = likelihood.uniform_nll(cache.vocab)["nats"]["total"]
title = f"preset {cfg.preset} (uniform guessing: {uniform:.2f} nats per note)"
live = display(plots.plot_history(train.new_history(cache.vocab.fields), title=title), display_id=True)
history = train.train(cfg, cache, on_epoch=lambda h: live.update(plots.plot_history(h, title=title)))
live.update(plots.plot_history(history, title=title))  # also after a resume that had nothing left to train

# %% [markdown]
# The final curves, with the validation loss of each head: pitch is the hardest to predict.

# %%
plots.plot_history(history, title=title, heads=True)

# %% [markdown]
# The notebook checks itself: the training loss must have fallen.

# %%
first, final = history["train_loss"][0], history["train_loss"][-1]
print(f"train loss {first:.3f} -> {final:.3f}, validation loss {history['val_loss'][-1]:.3f} nats per note "
      f"after {history['epoch'][-1]:.2f} epochs ({history['step'][-1]} steps)")
assert final < first, f"the training loss did not fall ({first:.3f} -> {final:.3f}): lower train.lr or train longer"
for name in (checkpoint.CHECKPOINT_BEST, checkpoint.CHECKPOINT_LAST, train.HISTORY_FILE):
    path = Path(cfg.train.out_dir) / name
    print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")

# %% [markdown]
# The end of training: the piece memory (what lets a generated piece bring its themes back) is
# fitted for this model on the validation pieces and stored in `ckpt_best.pt`: its weights, how
# far a repeat's timing may stray, and its strength (0 where it does not help this model).

# %%
print(memory_fit.describe_fit(memory_fit.fit_checkpoint_memory(checkpoint.default_checkpoint(cfg.train.out_dir), cache)))

# %% [markdown]
# Next: `04_sample_and_listen` generates music from the newest run's `ckpt_best.pt`. Running this
# notebook again continues training only if you raise `train.epochs`; otherwise it reports there is
# nothing to do.
