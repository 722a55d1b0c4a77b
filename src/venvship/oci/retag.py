"""Tags that move: a write that points an existing tag (in a layout or a registry) at other content.

A per-platform manifest tag moves whenever its digest changes. An index tag that only gains
platforms does not count as moved (merging platforms is what it is for); one that loses a
platform's manifest or has it replaced does. Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..artifact.documents import Index
from ..errors import ArtifactError


@dataclass(frozen=True)
class Retag:
    """A tag that named ``old`` and names (or, refused, would name) ``new``."""

    ref: str
    old: str
    new: str

    def to_json(self) -> dict[str, str]:
        return {"ref": self.ref, "old": self.old, "new": self.new}

    def __str__(self) -> str:
        return f"{self.ref}: tag moved from {self.old} to {self.new}"


class TagMoveRefused(ArtifactError):
    """``--immutable-tags``: a write would move existing tags; nothing was tagged."""

    def __init__(self, moves: Sequence[Retag]) -> None:
        first = moves[0]
        more = f" (and {len(moves) - 1} more tags)" if len(moves) > 1 else ""
        super().__init__(
            f"{first.ref}: the tag names {first.old}; this would move it to {first.new}{more}; "
            "refusing (--immutable-tags): publish the change under a new version"
        )
        self.moves = tuple(moves)


def moved(old_raw: bytes, new_raw: bytes, *, index: bool) -> bool:
    """Return whether pointing a tag from the document ``old_raw`` at ``new_raw`` moves it: any
    other content for a manifest, a dropped or replaced platform manifest for an index.

    Example: ``moved(old_index, old_index_plus_one_platform, index=True)`` → ``False``
    """
    if old_raw == new_raw:
        return False
    if not index:
        return True
    try:
        old = {m.digest for m in Index.from_bytes(old_raw).manifests}
        new = {m.digest for m in Index.from_bytes(new_raw).manifests}
    except ArtifactError:
        return True  # the tag named something else than an index before
    return not old <= new
