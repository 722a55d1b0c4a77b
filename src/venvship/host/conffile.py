"""A host's venv-pull settings files (``/etc/venvship/policy.toml``, ``registries.toml``): found,
checked and read the same way.

Python 3.9 and 3.10 have no ``tomllib`` and the target side imports nothing outside the stdlib
(no TOML parser of our own either: a second parser of a security setting is a second place to
get it wrong), so each file may also be written as JSON of the same shape (``NAME.json``, or any
explicit file ending in ``.json``). A ``.toml`` file on such a host is an error naming the JSON
form, never ignored. Stdlib only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifact.jsondoc import parse_json
from ..errors import InstallError
from . import trust


def find_settings(path: Path | None, defaults: tuple[Path, ...], *, what: str) -> Path | None:
    """Return the settings file to read: ``path`` (which must exist), else the one of ``defaults``
    that exists, else None; the file found is checked as venv-pull trusts it (only root may
    loosen it when venv-pull runs as root).

    Example: ``find_settings(None, (Path("/etc/venvship/policy.toml"), Path("/etc/venvship/policy.json")), what="the trust policy")``
    """
    if path is None:
        found = [p for p in defaults if p.exists()]
        if len(found) > 1:
            raise InstallError(f"{found[0]} and {found[1]}: two files for {what}; keep one")
        if not found:
            return None
        path = found[0]
    elif not path.exists():
        raise InstallError(f"{path}: {what} is not there")
    trust.check_tree(path, what=what)
    return path


def read_settings(path: Path, *, what: str) -> dict[str, Any]:
    """Return the top-level table of settings file ``path`` (TOML, or JSON if it ends in ``.json``).

    Example: ``read_settings(Path("/etc/venvship/registries.json"), what="the mirror configuration")``
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InstallError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from exc
    if path.suffix == ".json":
        data = parse_json(raw, str(path), error=lambda at, reason: InstallError(f"{at}: {reason}"))
    else:
        try:
            import tomllib
        except ImportError:
            raise InstallError(
                f"{path}: this Python has no tomllib (3.11+); write {what} as JSON "
                f"({path.with_suffix('.json')}), the same keys"
            ) from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InstallError(f"{path}: not valid TOML ({exc})") from exc
    if not isinstance(data, dict):
        raise InstallError(f"{path}: not a table of keys")
    return data
