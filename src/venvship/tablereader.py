"""Typed reads from a parsed TOML table (a recipe or its defaults file), with errors that name the
file and the key path, and hints that suggest the nearest known key or value.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar, cast

from .errors import RecipeError

T = TypeVar("T")


def did_you_mean(word: str, known: tuple[str, ...]) -> str:
    """Return `` (did you mean 'x'?)`` for the known word closest to ``word``, or "" if none is close."""
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def kind_name(kind: type) -> str:
    """Return the TOML name of a Python type (``dict`` → ``table``)."""
    return {str: "string", list: "list", dict: "table", int: "integer", bool: "boolean", float: "number"}.get(
        kind, kind.__name__
    )


class TableReader:
    """Typed access to a TOML table with errors that name the file and key path.

    Example: ``TableReader(path, data, "").sub("venv", ("name", "version")).get("name", str)``
    """

    def __init__(self, file: Path, data: Mapping[str, Any], prefix: str) -> None:
        self.file = file
        self.data = data
        self.prefix = prefix

    def where(self, key: str) -> str:
        return f"{self.file}: {self.prefix}.{key}" if self.prefix else f"{self.file}: {key}"

    def fail(self, key: str, message: str) -> RecipeError:
        return RecipeError(self.where(key), message)

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                known = ", ".join(allowed)
                raise self.fail(key, f"unknown key{did_you_mean(key, allowed)}; known keys: {known}")

    def get(self, key: str, kind: type[T], default: T | None = None, *, required: bool = False) -> T:
        if key not in self.data:
            if required:
                raise self.fail(key, "is required")
            return cast(T, default)
        value = self.data[key]
        # bool is an int in Python, but `version = true` is a mistake worth naming.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"must be a {kind_name(kind)}, not {kind_name(type(value))}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """Return the string at ``key`` (or ``default``), which must be one of ``choices``."""
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(
                key, f"must be one of {', '.join(choices)}, not {value!r}{did_you_mean(value, choices)}"
            )
        return value

    def str_list(self, key: str, *, check: Callable[[str, str], str] | None = None) -> tuple[str, ...]:
        value = self.get(key, list, [])
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise RecipeError(f"{self.where(key)}[{i}]", f"must be a string, not {kind_name(type(item))}")
            item = item.strip()
            if check is not None:
                item = check(item, f"{self.where(key)}[{i}]")  # "" for a comment line
            if item:  # empty entries are dropped, as the role's `select` does
                out.append(item)
        return tuple(out)

    def str_map(self, key: str) -> dict[str, str]:
        table = self.get(key, dict, {})
        out = {}
        for k, v in table.items():
            if not isinstance(v, (str, int, float, bool)):
                raise RecipeError(f"{self.where(key)}.{k}", "must be a string")
            out[str(k)] = str(v)
        return out

    def sub(self, key: str, allowed: tuple[str, ...]) -> TableReader:
        table = self.get(key, dict, {})
        reader = TableReader(self.file, table, f"{self.prefix}.{key}" if self.prefix else key)
        reader.check_keys(allowed)
        return reader
