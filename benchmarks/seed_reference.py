"""A seed-faithful reimplementation of the seed notebook's data handling, training step and
generation loop, kept beside the benchmarks so every speed-up is measured as a ratio against it
in the same run. Not used by the product.

What the seed did (see ORIGINAL_NOTEBOOK facts in the README's benchmark section):
- windows of 50 notes, stride 1, stored as a Python list of (window-of-tuples, target-tuple);
- ``__getitem__`` builds tensors from the tuples and moves every sample to the device itself;
- batch 64, shuffle, no workers; Adam lr 1e-3; loss = sum of the three cross-entropies;
- generation re-runs the whole 50-note window for every new note; only nucleus sampling took
  effect (top-k was computed and ignored); the three heads sampled independently.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

SEED_WINDOW = 50
SEED_BATCH = 64
SEED_LR = 1e-3


class SeedStyleDataset(Dataset):
    """Python list of window tuples; per-sample tensor construction and device copy."""

    def __init__(self, pieces: list[np.ndarray], window: int = SEED_WINDOW, device: str = "cpu"):
        self.device = device
        self.samples = []
        for toks in pieces:
            rows = [tuple(int(v) for v in r[:3]) for r in toks]
            for i in range(len(rows) - window):
                self.samples.append((rows[i : i + window], rows[i + window]))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx):
        seq, target = self.samples[idx]
        x = torch.tensor(seq, dtype=torch.long).to(self.device)
        y = torch.tensor(target, dtype=torch.long).to(self.device)
        return x, y


def seed_loader(pieces, device="cpu", batch_size: int = SEED_BATCH, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(SeedStyleDataset(pieces, device=device), batch_size=batch_size, shuffle=True, generator=g)


def seed_train_step(model, optimizer, x, y) -> float:
    """One seed-style step: window -> next note, sum of the three cross-entropies."""
    model.train()
    optimizer.zero_grad()
    logits = model(x)
    loss = sum(F.cross_entropy(lg, y[:, i]) for i, lg in enumerate(logits))
    loss.backward()
    optimizer.step()
    return loss.item()


def _nucleus(logits: torch.Tensor, top_p: float, temperature: float) -> int:
    probs = torch.softmax(logits / temperature, dim=-1)
    sp, si = torch.sort(probs, descending=True)
    cum = torch.cumsum(sp, dim=-1)
    cut = cum - sp > top_p
    sp[cut] = 0
    sp = sp / sp.sum()
    return int(si[torch.multinomial(sp, 1)])


@torch.no_grad()
def seed_generate(model, primer: np.ndarray, n_notes: int, temperature: float = 1.0, top_p: float = 0.9,
                  device="cpu", seed: int = 0) -> np.ndarray:
    """Re-encode the whole window for every new note, as the seed did; batch 1."""
    torch.manual_seed(seed)
    model.eval()
    window = [tuple(int(v) for v in r[:3]) for r in primer[-SEED_WINDOW:]]
    out = []
    for _ in range(n_notes):
        x = torch.tensor([window], dtype=torch.long).to(device)
        logits = model(x)
        note = tuple(_nucleus(lg[0], top_p, temperature) for lg in logits)
        out.append(note)
        window = window[1:] + [note]
    return np.array(out, dtype=np.int64)
