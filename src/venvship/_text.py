"""Text from outside (an artifact, a registry, a server) made fit for root's output. Stdlib only."""

from __future__ import annotations


def printable(text: str, *, keep: str = "") -> str:
    """Return ``text`` with every character that is not printable escaped, except those in ``keep``:
    a line break or a terminal escape from hostile text would forge lines or rewrite the screen.

    Example: ``printable("demo\\x1b[2K\\nsigned") == "demo\\\\x1b[2K\\\\nsigned"``
    """
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
