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
# **Reads:** the token cache of notebook 02 (`data/cache/`; built here if missing, from MAESTRO
# when notebook 01 downloaded it, else from the embedded piano corpus).
# **Writes:** under the output folder (`outputs/` unless `MELODY_OUTPUTS_DIR` says otherwise):
# `ckpt_last.pt` (every epoch, to resume from), `ckpt_best.pt` (the lowest validation loss, for
# notebook 04) and `history.json` (the losses).
#
# The model is a stateful LSTM that reads notes one at a time and predicts the next one: its pitch
# first, then its step and duration knowing that pitch. It learns from every position of each
# training window, and is scored on the validation pieces, which it never trains on.

# %%
# Colab only: fetch the project and the few packages Colab lacks. Elsewhere this cell does nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    REPO = "/content/melody-forge"  # a clone, so data/ and outputs/ sit beside the package as in a checkout
    if not os.path.isdir(REPO):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/melody-forge/melody-forge", REPO], check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["pretty_midi", "symusic"], check=True)  # torch, numpy, matplotlib, ipywidgets: Colab's own
    subprocess.run(pip + ["--no-deps", "tinysoundfont"], check=True)  # SoundFont audio (its pyaudio dependency is for live playback)
    sys.path.insert(0, REPO)
    os.chdir(f"{REPO}/notebooks")

# %%
from pathlib import Path

import torch
from IPython.display import display

from melody_utils import checkpoint, corpus, likelihood, model, plots, train
from melody_utils.config import get_config

# %% [markdown]
# ## A GPU?
#
# The `tiny` and `small` presets train on a CPU in seconds to minutes; `colab` wants a GPU.

# %%
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)}")
else:
    print("No GPU: training runs on the CPU. On Colab, pick one with Runtime > Change runtime type > "
          "T4 GPU (or better), then run the notebook again from the top.")

# %% [markdown]
# ## The preset
#
# One config holds every setting; a **preset** sets the sizes. `PRESET = None` takes the
# environment variable `MELODY_PRESET` (the tests set `tiny`), else `small` (a few minutes on a
# laptop). On a Colab GPU runtime set `PRESET = "colab"`: MAESTRO if notebook 01 downloaded it, a
# 3-layer LSTM of 512 units, velocity modelled, about half an hour on a T4. Any single setting can
# be changed too, e.g. `get_config(PRESET, **{"train.epochs": 10})`.

# %%
PRESET = None  # None: $MELODY_PRESET or "small"; "colab" on a GPU runtime; "tiny" for a smoke test
cfg = get_config(PRESET)
print(f"preset {cfg.preset}: {cfg.model.arch} LSTM, {cfg.model.layers} x {cfg.model.hidden} units, "
      f"windows of {cfg.data.window} notes, batch {cfg.train.batch_size}, {cfg.train.epochs} epochs"
      + (f" (at most {cfg.train.max_steps} steps)" if cfg.train.max_steps else ""))

# %% [markdown]
# On Colab, a runtime that disconnects loses its files. Set `SAVE_TO_DRIVE = True` to write the
# checkpoints to your Google Drive instead (you will be asked to allow access); a later session
# then resumes from there. Set the same flag in notebook 04 to generate from them.

# %%
SAVE_TO_DRIVE = False
if SAVE_TO_DRIVE and "google.colab" in sys.modules:
    from google.colab import drive

    drive.mount("/content/drive")
    cfg = cfg.override(**{"train.out_dir": "/content/drive/MyDrive/melody-forge/outputs"})
print("checkpoints go to", cfg.train.out_dir)

# %% [markdown]
# ## The data
#
# The token cache of notebook 02, built now if it is not there yet.

# %%
cache = corpus.prepare(cfg.data)
print({split: len(cache.piece_indices(split)) for split in corpus.SPLITS}, f"pieces, {len(cache.tokens):,} notes")
n_params = sum(p.numel() for p in model.build_from_config(cfg, cache.vocab).parameters())
print(f"model: {n_params:,} parameters; vocabulary {dict(zip(cache.vocab.fields, cache.vocab.sizes))}")

# %% [markdown]
# ## Train
#
# Training resumes from `ckpt_last.pt` when the output folder holds one, and says so (a checkpoint
# of other settings is refused with a message saying what differs). Set `RESUME = False` to start
# over. The plot below is redrawn after every epoch: the **train** loss
# (averaged over the epoch) and the **validation** loss, in nats per note summed over pitch, step
# and duration. A model guessing uniformly would score the sum of the logs of the vocabulary sizes.

# %%
RESUME = True  # False: start over, replacing the checkpoints in the output folder
uniform = likelihood.uniform_nll(cache.vocab)["nats"]["total"]
title = f"preset {cfg.preset} (uniform guessing: {uniform:.2f} nats per note)"
live = display(plots.plot_history(train.new_history(cache.vocab.fields), title=title), display_id=True)
history = train.train(cfg, cache, resume=RESUME, on_epoch=lambda h: live.update(plots.plot_history(h, title=title)))
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
# Next: `04_sample_and_listen` generates music from `ckpt_best.pt`. Running this notebook again
# continues training only if you raise `train.epochs`; otherwise it reports there is nothing to do.
