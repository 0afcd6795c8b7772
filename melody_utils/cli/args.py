"""The command line's argument types: one-line errors, checked numbers and ``--set section.field=value``.

Each type raises ``argparse.ArgumentTypeError`` (or ``ValueError`` for ``--set``) with the parameter's
range and the value given, so a bad flag ends in one ``error: ...`` line, never a traceback.
"""

from __future__ import annotations

import argparse

from ..config import Config
from ..generate.memory import MAX_MEMORY


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``error: argument --top-p: ... (see --help)``."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def number(kind, lo=None, hi=None, lo_open=False, what=""):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__ if kind is int else 'a number'}, got {text!r}") from None
        if value != value or (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


POSITIVE_INT = number(int, 1, what=">= 1")
NON_NEGATIVE_INT = number(int, 0, what=">= 0 (0 = off)")
NON_NEGATIVE_FLOAT = number(float, 0.0, what=">= 0 (0 = off)")
POSITIVE_FLOAT = number(float, 0.0, lo_open=True, what="> 0")
PROBABILITY = number(float, 0.0, 1.0, lo_open=True, what="in (0, 1] (1 = off)")
MEMORY = number(float, 0.0, MAX_MEMORY, what=f"in [0, {MAX_MEMORY:g}] (0 = off, 1 = the fitted piece memory)")


def at_least_two(text):
    """An integer >= 2: a distribution needs two pieces."""
    value = POSITIVE_INT(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a distribution needs 2 pieces), got {text}")
    return value


def number_list(parse_one, example):
    """Comma-separated numbers, each checked by ``parse_one``."""

    def parse(text):
        items = [t.strip() for t in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as {example}, got {text!r}")
        try:
            return [parse_one(t) for t in items]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (in the list {text!r})") from None

    return parse


def parse_setting(cfg: Config, item: str) -> tuple[str, object]:
    """``section.field=value`` -> (key, value typed like the field's current value)."""
    key, sep, text = item.partition("=")
    if not sep:
        raise ValueError(f"--set expects section.field=value (e.g. model.hidden=128), got {item!r}")
    section, _, name = key.partition(".")
    current = getattr(getattr(cfg, section, None), name, None) if name else None
    if current is None:
        raise ValueError(f"--set: unknown config key {key!r}; use section.field with a section of data, model, train, sample")
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return key, text.lower() in ("true", "1", "yes")
        return key, type(current)(text)
    except ValueError:
        raise ValueError(f"--set {key}: expected a {type(current).__name__}, got {text!r}") from None


# The settings each command reads. A --set outside them could not take effect (the checkpoint decides
# it, or the command never reads it), so it is an error, never silently ignored.
CORPUS_SETTINGS = ("data.source", "data.sustain", "data.max_files", "data.val_fraction", "data.test_fraction",
                   "data.split_seed")  # which pieces, how they are read and split
VOCAB_SETTINGS = ("data.bins", "data.n_step_bins", "data.n_dur_bins", "data.velocity_bins")
WHERE_SETTINGS = ("train.device", "train.out_dir")
EVALUATE_SAMPLING = ("sample.temperature", "sample.top_k", "sample.top_p", "sample.n_notes", "sample.memory")
COMMAND_SETTINGS = {  # command -> (the keys or "section." prefixes it reads, why others cannot take effect)
    "prepare": (CORPUS_SETTINGS + VOCAB_SETTINGS, "prepare only reads and tokenizes the corpus"),
    "train": (("data.", "model.", "train.", "sample."), ""),
    "quickstart": (("data.", "model.", "train.", "sample."), ""),
    "generate": (WHERE_SETTINGS + ("sample.",), "generate takes the model, its vocabulary and its data from the checkpoint"),
    "evaluate": (WHERE_SETTINGS + CORPUS_SETTINGS + EVALUATE_SAMPLING,
                 "evaluate takes the model and its vocabulary from the checkpoint"),
}


def check_settings(command: str, keys) -> None:
    """ValueError naming the first ``--set`` key (dotted) that ``command`` cannot apply, and what it reads."""
    accepted, why = COMMAND_SETTINGS.get(command, (("data.", "model.", "train.", "sample."), ""))
    for key in keys:
        if not any(key == a or (a.endswith(".") and key.startswith(a)) for a in accepted):
            listed = ", ".join(a + "*" if a.endswith(".") else a for a in accepted)
            raise ValueError(f"--set {key} cannot take effect for `{command}` ({why}); drop it. "
                             f"`{command}` reads --set {listed}")
