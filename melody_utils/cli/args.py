"""The command line's argument types: text -> values, checked against the settings' own limits.

A flag's type is :func:`flag` of the :class:`~melody_utils.checks.Limit` its setting declares (in
the config sections, :class:`~melody_utils.generate.settings.SamplingSettings` or
:class:`~melody_utils.generate.controls.Controls`), so a flag and ``--set`` allow the same values
and say so the same way. A bad value is ``argparse.ArgumentTypeError`` (``ValueError`` for
``--set``): one ``error: ...`` line, never a traceback.
"""

from __future__ import annotations

import argparse

from ..checks import Limit, limit_of
from ..config import Config
from ..generate.controls import DEFAULT_REPEAT_GUARD, Controls
from ..music.scales import KEY_HELP, RANGE_HELP, parse_key, parse_pitch_range


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``error: argument --top-p: ... (see --help)``."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def flag(limit: Limit):
    """An argparse ``type``: the text as a value of ``limit``'s kind, within it."""

    def parse(text):
        try:
            value = limit.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not limit.ok(value):
            raise argparse.ArgumentTypeError(f"must be {limit.describe()}, got {text}")
        return value

    return parse


def setting_flag(settings_class, name: str):
    """:func:`flag` of the limit ``settings_class`` declares for its field ``name``."""
    return flag(limit_of(settings_class, name))


NON_NEGATIVE_INT = flag(Limit("int", "an integer >= 0 (0 = off)", 0))
AT_LEAST_TWO = flag(Limit("int", "an integer >= 2 (a distribution needs 2 pieces)", 2))


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
    """``section.field=value`` -> (key, value of the field's kind); its range is checked when the
    config is rebuilt with it (:meth:`Config.override`)."""
    key, sep, text = item.partition("=")
    if not sep:
        raise ValueError(f"--set expects section.field=value (e.g. model.hidden=128), got {item!r}")
    section, _, name = key.partition(".")
    part = getattr(cfg, section, None) if section != "preset" else None
    if part is None or not name or not hasattr(part, name):
        raise ValueError(f"--set: unknown config key {key!r}; use section.field with a section of data, model, train, sample")
    try:
        return key, limit_of(part, name).parse(text)
    except ValueError as exc:
        raise ValueError(f"--set {key}: {exc}") from None


# ---------------------------------------------------------------- the controls' flags
def _checked_text(parse):
    """An argparse ``type`` that checks text with ``parse`` (ValueError: one line) and keeps the text."""

    def parse_arg(text):
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse_arg


def add_control_arguments(group) -> None:
    """The control flags of ``generate`` and ``quickstart`` (on an argparse group). --key and
    --pitch-range are checked while parsing and kept as text, which Controls parses again."""
    group.add_argument("--key", type=_checked_text(parse_key), help=f"keep to a key or scale: {KEY_HELP}")
    group.add_argument("--key-strength", type=setting_flag(Controls, "key_strength"), metavar="NATS",
                       help="soft key: lower out-of-key pitches by this many nats instead of masking them")
    group.add_argument("--pitch-range", type=_checked_text(parse_pitch_range), metavar="LOW-HIGH", help=RANGE_HELP)
    group.add_argument("--density", type=setting_flag(Controls, "density"), metavar="NOTES_PER_S",
                       help="target note density in notes per second (chord notes count)")
    for name in ("pitch", "timing", "velocity"):
        group.add_argument(f"--temperature-{name}", type=setting_flag(Controls, f"temperature_{name}"), default=1.0,
                           metavar="T", help=f"extra temperature for {name} (multiplies --temperature; default 1)")
    group.add_argument("--repeat-guard", type=setting_flag(Controls, "repeat_guard"), nargs="?",
                       const=DEFAULT_REPEAT_GUARD, default=0.0, metavar="NATS",
                       help=f"penalise notes that would continue a loop (default {DEFAULT_REPEAT_GUARD:g} nats when given)")


def controls_from_args(args) -> Controls | None:
    """The Controls the flags ask for (None without control flags). ValueError for a bad combination."""
    if not hasattr(args, "key"):
        return None
    c = Controls(key=args.key, key_strength=args.key_strength, pitch_range=args.pitch_range, density=args.density,
                 temperature_pitch=args.temperature_pitch, temperature_timing=args.temperature_timing,
                 temperature_velocity=args.temperature_velocity, repeat_guard=args.repeat_guard)
    return c if c.active else None


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


def check_applicable(command: str, keys) -> None:
    """ValueError naming the first ``--set`` key (dotted) that ``command`` cannot apply, and what it reads."""
    accepted, why = COMMAND_SETTINGS.get(command, (("data.", "model.", "train.", "sample."), ""))
    for key in keys:
        if not any(key == a or (a.endswith(".") and key.startswith(a)) for a in accepted):
            listed = ", ".join(a + "*" if a.endswith(".") else a for a in accepted)
            raise ValueError(f"--set {key} cannot take effect for `{command}` ({why}); drop it. "
                             f"`{command}` reads --set {listed}")
