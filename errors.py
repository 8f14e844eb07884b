"""The one exception type a user may see.

Anything raised as ``RecsightError`` is a problem with the user's input or environment (a missing
file, an unknown customer, a corrupt model) and its message is shown as one line. Every other
exception is a bug: the command line logs its traceback and shows a short line instead.
"""

from __future__ import annotations

__all__ = ["RecsightError"]


class RecsightError(Exception):
    """A clear, user-facing error: the message is one line that says what to do."""
