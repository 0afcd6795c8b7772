"""The command line: ``python -m melody_utils {prepare,train,generate,quickstart,evaluate}``
(``commands``), with its argument types (``args``)."""

from .commands import main

__all__ = ["main"]
