"""JSON documents as venvship writes and reads them: canonical bytes, their digest, strict reads.

Stdlib only: the target side reads these on bare hosts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from .errors import ArtifactError


def canonical_json(obj: Any) -> bytes:
    """Return the one byte form of ``obj`` that venvship writes: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_object(raw: bytes, where: str) -> dict[str, Any]:
    """Return ``raw`` parsed as a JSON object; raise ArtifactError naming ``where`` otherwise.

    Example: ``load_object(layout.read_blob(digest), f"{layout.root}@{digest}")``
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError included
        raise ArtifactError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: not a JSON object")
    return data


def typed_field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """Return ``data[key]`` if it is a ``kind``; raise ArtifactError naming ``where`` and the key otherwise."""
    value = data.get(key)
    if not isinstance(value, kind):
        raise ArtifactError(f"{where}: '{key}' is missing or not a {kind.__name__}")
    return value
