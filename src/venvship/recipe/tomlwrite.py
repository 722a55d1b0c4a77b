"""Recipe TOML as text: values on one line (long lists one item a line), keys in DESIGN §3's order.

tomllib only reads; this writes the little of TOML that a recipe needs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

# Order of keys in the written recipe, as in DESIGN §3.
RECIPE_ORDER = {
    "venv": (
        "name", "version", "install-path", "python", "packages", "default-packages",
        "build-requirements", "build-requirements-extra", "constraints", "global-constraints",
        "install-tool", "package-state", "distro-package-state", "distro-cache-valid-time",
        "ignore-pip-config", "symlink-system-packages", "facts",
    ),
    "venv.build": ("distro-packages", "pip-args", "env"),
    "venv.install": ("distro-packages", "pip-args", "env"),
}  # fmt: skip

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(text: str) -> str:
    """Return ``text`` as a TOML basic string."""
    # JSON's escapes are a subset of TOML's; TOML also forbids a raw DEL, which JSON leaves as is.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value: Any) -> str:
    """Return ``value`` (str, bool, int, float, list or dict of those) as TOML, on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _assign(key: str, value: Any) -> str:
    line = f"{_key(key)} = {toml_value(value)}"
    if isinstance(value, list) and value and len(line) > 100:
        # One item per line keeps diffs of long package lists readable.
        return f"{_key(key)} = [\n" + "".join(f"    {toml_value(v)},\n" for v in value) + "]"
    return line


def dump_recipe(tables: Mapping[str, Mapping[str, Any]], facts: Sequence[Mapping[str, Any]]) -> str:
    """Return the recipe text for ``tables`` (``venv``, ``venv.build``, ``venv.install``) and ``facts``.

    Example: ``dump_recipe({"venv": {"name": "demo"}, "venv.build": {}, "venv.install": {}}, [])``
    """
    out: list[str] = []
    for table, order in RECIPE_ORDER.items():
        values = tables[table]
        if not values and table != "venv":
            continue
        out.append(f"\n[{table}]\n" if out else f"[{table}]\n")
        out.extend(_assign(k, values[k]) + "\n" for k in order if k in values)
    for fact in facts:
        out.append("\n[[venv.facts]]\n")
        out.extend(_assign(k, fact[k]) + "\n" for k in ("file", "section", "option", "value") if k in fact)
    return "".join(out)
