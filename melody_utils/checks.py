"""Checking a setting's value once, with one message shape: ``NAME must be WHAT, got VALUE``.

A :class:`Limit` says what a setting may hold; settings objects (the config sections,
:class:`~melody_utils.generate.settings.SamplingSettings`, the controls) check their fields with
it when they are made, so a bad value fails where it is set, naming the setting. The command line
and the widgets only turn text and slider positions into values; the argparse types reuse the same
limits (:meth:`Limit.parse`), so a flag and a ``--set`` agree on what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def is_number(value, integer: bool = False) -> bool:
    """A real number (an integer when ``integer``), finite, and not a bool (``True`` is 1 to Python)."""
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)


def is_flag(value) -> bool:
    """A bool, Python's or numpy's."""
    return type(value).__name__ in ("bool", "bool_")


@dataclass(frozen=True)
class Limit:
    """What one setting may hold. ``what`` completes "NAME must be ...", e.g. ``"> 0 (1.0 = unchanged)"``.

    ``kind``: "int", "float", "bool", "str" or "any"; numbers may have bounds (``lo``/``hi``,
    open with ``lo_open``/``hi_open``), strings a tuple of ``choices``; ``optional`` admits None.
    """

    kind: str
    what: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    optional: bool = False

    def ok(self, value) -> bool:
        if value is None:
            return self.optional
        if self.kind == "bool":
            return is_flag(value)
        if self.kind == "str":
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if self.kind == "any":
            return True
        if not is_number(value, integer=self.kind == "int"):
            return False
        low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        return low_ok and (self.hi is None or (value < self.hi if self.hi_open else value <= self.hi))

    def describe(self) -> str:
        if self.what:
            return self.what
        if self.kind == "bool":
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return {"int": "an integer", "float": "a number", "str": "text"}.get(self.kind, "a value")

    def check(self, name: str, value):
        """``value`` (an int or float for numbers) when allowed, else ValueError naming ``name``."""
        if not self.ok(value):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        if value is None or self.kind not in ("int", "float"):
            return bool(value) if self.kind == "bool" and value is not None else value
        return int(value) if self.kind == "int" else float(value)

    def parse(self, text: str):
        """Text (a flag, ``--set``) -> a value of this kind, not yet range-checked. ValueError when it is no such value."""
        if self.optional and text.lower() in ("none", ""):
            return None
        if self.kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in _TRUE
        if self.kind in ("int", "float"):
            try:
                return int(text) if self.kind == "int" else float(text)
            except ValueError:
                raise ValueError(f"expected {'an integer' if self.kind == 'int' else 'a number'}, got {text!r}") from None
        return text


def check_number(name: str, value, what: str, lo=None, hi=None, integer: bool = False, lo_open: bool = False,
                 hi_open: bool = False):
    """One number checked on the spot: ``Limit(...).check(name, value)``."""
    return Limit("int" if integer else "float", what, lo, hi, lo_open, hi_open).check(name, value)


def setting(default, limit: Limit, **kwargs):
    """A dataclass field with its :class:`Limit` (read by :func:`check_fields`)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple or a default_factory for a mutable default")
    return dataclasses.field(default=default, metadata={"limit": limit}, **kwargs)


def limit_of(obj_or_class, name: str) -> Limit | None:
    """The :class:`Limit` a dataclass declares for its field ``name`` (None when it declares none)."""
    for f in dataclasses.fields(obj_or_class):
        if f.name == name:
            return f.metadata.get("limit")
    raise KeyError(name)


def check_fields(obj, prefix: str = "") -> None:
    """Check (and normalise: ints to floats where a float is asked) every field of the dataclass
    ``obj`` that declares a :class:`Limit`; ValueError naming ``prefix + field``."""
    for f in dataclasses.fields(obj):
        limit = f.metadata.get("limit")
        if limit is not None:
            object.__setattr__(obj, f.name, limit.check(prefix + f.name, getattr(obj, f.name)))
