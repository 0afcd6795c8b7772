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
# Longest piece one call generates: 100,000 notes are hours of piano music and a few MB of memory;
# the output is allocated before the first note, so 10^9 notes would need tens of GB.
MAX_N_NOTES = 100_000
N_NOTES = number(int, 1, MAX_N_NOTES, what=f"in [1, {MAX_N_NOTES:,}]")


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
