"""JSON documents as venvship writes and reads them: canonical bytes, their digest, strict reads.

Stdlib only: the target side reads these on bare hosts.
"""

from __future__ import annotations

import array
import hashlib
import itertools
import json
import re
from typing import Any, Callable, Iterator, Mapping

from ..errors import ArtifactError, VenvshipError

# No document venvship reads is nested more than a few levels; the stdlib parsers recurse and
# fail with a RecursionError traceback far below what a hostile document can hold.
MAX_DEPTH = 64

# A JSON string, or an unterminated one up to the end: it always matches where it starts, so a
# scan over hostile text stays linear (``\\.?`` takes a trailing lone backslash too).
JSON_STRING = re.compile(r'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|\Z)', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes

Refusal = Callable[[str, str], VenvshipError]
"""Builds the error for a refused value from ``(where, reason)``: ``RecipeError`` fits as it is."""


def artifact_error(where: str, reason: str) -> VenvshipError:
    """Return ``ArtifactError("<where>: <reason>")``, the default :data:`Refusal` of the target side."""
    return ArtifactError(f"{where}: {reason}")


def canonical_json(obj: Any) -> bytes:
    """Return the one byte form of ``obj`` that venvship writes: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bracket_depth(text: str, *, strings: re.Pattern[str] = JSON_STRING) -> int:
    """Return how deep ``[``/``{`` nest in ``text`` outside what ``strings`` matches: a scan to
    run before a recursive parser, at C speed (no Python loop over the text).

    Example: ``bracket_depth('{"a": ["]"]}') == 2``
    """
    # UTF-8 keeps ASCII bytes out of multi-byte sequences: only the brackets survive the delete.
    brackets = strings.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(array.array("b", brackets.translate(_STEPS)), initial=0))


def parse_json(raw: bytes | str, where: str, *, error: Refusal = artifact_error) -> Any:
    """Return ``raw`` (UTF-8) parsed as JSON nested at most :data:`MAX_DEPTH` deep; raise
    ``error(where, reason)`` otherwise.

    Example: ``parse_json(resp.read_limited(1 << 20), "token answer")``
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise error(where, f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if bracket_depth(text) > MAX_DEPTH:
        raise error(where, f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise error(where, f"not valid JSON ({exc})") from exc


def load_object(raw: bytes, where: str) -> dict[str, Any]:
    """Return ``raw`` parsed as a JSON object holding no NUL character; raise ArtifactError
    naming ``where`` otherwise.

    Example: ``load_object(layout.read_blob(digest), f"{layout.root}@{digest}")``
    """
    data = parse_json(raw, where)
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: not a JSON object")
    check_no_nul(data, where)
    return data


def walk(data: Any) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(key path, depth, value)`` for ``data`` and every value in it, in document order,
    without recursion (parsed data may nest deeper than the stack allows).

    Example: ``[p for p, _, _ in walk({"a": [1]})] == ["", "a", "a[0]"]``
    """
    stack: list[tuple[str, int, Any]] = [("", 0, data)]
    while stack:
        path, depth, value = stack.pop()
        yield path, depth, value
        if isinstance(value, dict):
            items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend((p, depth + 1, v) for p, v in reversed(items))


def join_path(where: str, path: str) -> str:
    """Return ``where`` followed by the key path ``path`` (``config`` + ``lock[0]`` → ``config.lock[0]``)."""
    if not path:
        return where
    return f"{where}{path}" if path.startswith("[") or not where else f"{where}.{path}"


def check_no_nul(data: Any, where: str, *, error: Refusal = artifact_error) -> None:
    """Raise ``error`` naming the key path of the first string (or key) in ``data`` holding a NUL.

    A NUL cuts a name, a path or an argument short wherever it reaches C; no field allows one.
    """
    for path, _, value in walk(data):
        if (isinstance(value, str) and "\0" in value) or (
            isinstance(value, dict) and any("\0" in str(k) for k in value)
        ):
            # A key with a NUL is named by its parent's path, so no path shown here holds one.
            raise error(join_path(where, path), "contains a NUL character")


def typed_field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """Return ``data[key]`` if it is a ``kind``; raise ArtifactError naming ``where`` and the key otherwise."""
    value = data.get(key)
    # bool is an int in Python, but `"size": true` is not a size.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(f"{where}: '{key}' is missing or not a {kind.__name__}")
    return value


def str_map(value: Any, where: str) -> dict[str, str]:
    """Return ``value`` if it is an object of strings; raise ArtifactError naming ``where`` otherwise."""
    if not isinstance(value, dict):
        raise ArtifactError(f"{where}: not an object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ArtifactError(f"{where}.{key}: not a string")
    return dict(value)
