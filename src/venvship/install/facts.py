"""Ansible local facts: INI files merged section by section, written atomically with mode 0644."""

from __future__ import annotations

import configparser
import io
from pathlib import Path
from typing import Iterable, Mapping

from .._fsutil import atomic_write
from ..artifact.documents import Fact
from ..artifact.venvconfig import check_fact
from ..errors import InstallError

_READ_LIMIT = 1 << 20


def _parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep option case as given
    return parser


def _ansible_check(path: Path, text: str) -> None:
    """Refuse ``text`` unless Ansible reads it: it uses a default ``ConfigParser()``
    (``%``-interpolation, options folded to lower case), and one bad file hides the whole file."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
        for section in parser.sections():
            dict(parser.items(section))  # interpolates every value
    except configparser.Error as exc:
        raise InstallError(f"{path}: Ansible could not read it ({exc})") from exc


def _clashes(parser: configparser.ConfigParser, path: Path) -> None:
    """Refuse two options of one section that differ only in case: Ansible folds them into one
    and refuses the whole file."""
    for section in parser.sections():
        seen: dict[str, str] = {}
        for option in parser.options(section):
            other = seen.setdefault(option.lower(), option)
            if other != option:
                raise InstallError(
                    f"{path}: [{section}] options {other!r} and {option!r} differ only in case"
                )


def facts_with_own(facts: Iterable[Fact], own: Mapping[str, str]) -> list[Fact]:
    """Return ``facts`` plus venvship's own options in every (file, section) the recipe names."""
    out = list(facts)
    sections = sorted({(f.file, f.section) for f in out})
    for file, section in sections:
        out.extend(Fact(file=file, section=section, option=k, value=v) for k, v in sorted(own.items()))
    return out


def facts_now(facts_dir: Path, facts: Iterable[Fact]) -> tuple[Fact, ...]:
    """Return ``facts`` with the values their files hold now ("" where a file, section or option
    is missing or unreadable): what a venv made before venvship was described by."""
    out = []
    for fact in facts:
        parser = _parser()
        try:
            with open(facts_dir / f"{fact.file}.fact", "rb") as fh:
                parser.read_string(fh.read(_READ_LIMIT).decode("utf-8"))
            value = parser.get(fact.section, fact.option, fallback="").replace("%%", "%")
        except (OSError, UnicodeDecodeError, configparser.Error):
            value = ""
        out.append(Fact(file=fact.file, section=fact.section, option=fact.option, value=value))
    return tuple(out)


def _refused(where: str, reason: str) -> InstallError:
    return InstallError(f"{where}: {reason}")


def write_facts(facts_dir: Path, facts: Iterable[Fact]) -> list[Path]:
    """Merge ``facts`` into ``<facts_dir>/<file>.fact``; return the files rewritten.

    Other sections and options in those files are kept; a file is only written if its
    content changes.
    """
    by_file: dict[str, list[Fact]] = {}
    for i, fact in enumerate(facts):
        # Checked when the config was read, and here again: this is where a name becomes a path
        # and an INI line, as root.
        check_fact(fact, where=f"facts[{i}]", error=_refused)
        by_file.setdefault(fact.file, []).append(fact)
    written = []
    for file, items in sorted(by_file.items()):
        path = facts_dir / f"{file}.fact"
        parser = _parser()
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        except UnicodeDecodeError as exc:
            raise InstallError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
        try:
            parser.read_string(old, source=str(path))
        except configparser.Error as exc:
            raise InstallError(f"{path}: not an INI file ({exc})") from exc
        for fact in items:
            if not parser.has_section(fact.section):
                parser.add_section(fact.section)
            # Ansible reads with %-interpolation: a literal % is written as %%.
            parser.set(fact.section, fact.option, str(fact.value).replace("%", "%%"))
        _clashes(parser, path)
        out = io.StringIO()
        parser.write(out)
        if out.getvalue() != old:
            _ansible_check(path, out.getvalue())
            atomic_write(path, out.getvalue().encode("utf-8"), mode=0o644)
            written.append(path)
    return written
