"""TOML files (a recipe or its defaults file) read strictly, and typed reads from their tables,
with errors that name the file and the key path, and hints that suggest the nearest known key or value.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar, cast

from ..artifact.jsondoc import MAX_DEPTH, bracket_depth, check_no_nul, walk
from ..artifact.venvconfig import check_env
from ..errors import RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the build side runs on 3.9 and 3.10 too
    import tomli as tomllib

T = TypeVar("T")

# What is not syntax in TOML: strings of the four kinds, and comments. Each alternative also
# matches an unterminated string up to where it would end, so the scan stays linear.
_TOML_TEXT = re.compile(
    r'"""[^"\\]*(?:(?:\\.?|"(?!""))[^"\\]*)*(?:"""|\Z)'
    r"|'''[^']*(?:'(?!'')[^']*)*(?:'''|\Z)"
    r'|"[^"\\\n]*(?:\\.?[^"\\\n]*)*(?:"|$)'
    r"|'[^'\n]*(?:'|$)"
    r"|#[^\n]*",
    re.M,
)


def load_toml(path: Path) -> dict[str, Any]:
    """Return the TOML file at ``path`` parsed; raise RecipeError naming the file (and the key
    path of a string holding a NUL) if it cannot be read, is not TOML or nests deeper than
    :data:`~venvship.artifact.jsondoc.MAX_DEPTH` levels.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise RecipeError(str(path), "file not found") from exc
    except OSError as exc:
        raise RecipeError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(str(path), "not UTF-8 text") from exc
    too_deep = RecipeError(str(path), f"nested deeper than {MAX_DEPTH} levels")
    # Before parsing: tomllib recurses into arrays and inline tables (a RecursionError traceback).
    if bracket_depth(text, strings=_TOML_TEXT) > MAX_DEPTH:
        raise too_deep
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(str(path), f"invalid TOML: {exc}") from exc
    if any(depth > MAX_DEPTH for _, depth, _ in walk(data)):  # dotted keys nest without brackets
        raise too_deep
    check_no_nul(data, "", error=lambda at, reason: RecipeError(f"{path}: {at}", reason))
    return data


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

    ``report``: where faults that need not stop the reading go (an unknown key, a bad list item,
    which is then left out), so that one run names them all; without it, the first is raised.

    Example: ``TableReader(path, data, "").sub("venv", ("name", "version")).get("name", str)``
    """

    def __init__(
        self,
        file: Path,
        data: Mapping[str, Any],
        prefix: str,
        *,
        report: Callable[[RecipeError], None] | None = None,
    ) -> None:
        self.file = file
        self.data = data
        self.prefix = prefix
        self.report = report

    def fault(self, error: RecipeError) -> None:
        """Raise ``error``, or hand it to ``report`` and go on."""
        if self.report is None:
            raise error
        self.report(error)

    def where(self, key: str) -> str:
        return f"{self.file}: {self.prefix}.{key}" if self.prefix else f"{self.file}: {key}"

    def fail(self, key: str, message: str) -> RecipeError:
        return RecipeError(self.where(key), message)

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                known = ", ".join(allowed)
                self.fault(self.fail(key, f"unknown key{did_you_mean(key, allowed)}; known keys: {known}"))

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
            try:
                if not isinstance(item, str):
                    raise RecipeError(
                        f"{self.where(key)}[{i}]", f"must be a string, not {kind_name(type(item))}"
                    )
                item = item.strip()
                if check is not None:
                    item = check(item, f"{self.where(key)}[{i}]")  # "" for a comment line
            except RecipeError as exc:
                self.fault(exc)
                continue
            if item:  # empty entries are dropped, as the role's `select` does
                out.append(item)
        return tuple(out)

    def env(self, key: str) -> dict[str, str]:
        """Return the environment table at ``key``: variable names, values as strings."""
        table = self.get(key, dict, {})
        out = {}
        for k, v in table.items():
            if not isinstance(v, (str, int, float, bool)):
                raise RecipeError(f"{self.where(key)}.{k}", "must be a string")
            out[str(k)] = str(v)
        return check_env(out, where=self.where(key), error=RecipeError)

    def child(self, data: Mapping[str, Any], prefix: str) -> TableReader:
        """Return a reader of ``data`` (a table inside this one) at ``prefix``, reporting as this one does."""
        return TableReader(self.file, data, prefix, report=self.report)

    def sub(self, key: str, allowed: tuple[str, ...]) -> TableReader:
        table = self.get(key, dict, {})
        reader = self.child(table, f"{self.prefix}.{key}" if self.prefix else key)
        reader.check_keys(allowed)
        return reader
