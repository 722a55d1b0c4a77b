"""Checks of a recipe's single values, each raising RecipeError with the file and key path, and
:class:`Problems`, which decides whether the first fault stops the reading or all are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from ..artifact.documents import Fact
from ..artifact.jsondoc import walk
from ..artifact.venvconfig import NAME_RE, TAG_RE, check_fact
from ..errors import RecipeError
from .requirements import check_pins, expand, is_url, read_local
from .rolevalues import is_template
from .tablereader import TableReader

DEFAULT_FACTS_FILE = "openstack_ansible"  # venv_facts_dest
FACT_KEYS = ("file", "section", "option", "value")

T = TypeVar("T")


def read_facts(reader: TableReader) -> tuple[Fact, ...]:
    value = reader.get("facts", list, [])
    facts: list[Fact] = []
    for i, item in enumerate(value):
        try:
            facts.append(_fact(reader, i, item, facts))
        except RecipeError as exc:
            reader.fault(exc)
    return tuple(facts)


def _fact(reader: TableReader, i: int, item: object, before: list[Fact]) -> Fact:
    """Return the ``i``-th fact of ``reader``'s ``facts`` list, checked against those ``before`` it."""
    where = f"{reader.where('facts')}[{i}]"
    if not isinstance(item, dict):
        raise RecipeError(where, "must be a table with section, option and value")
    sub = reader.child(item, f"{reader.prefix}.facts[{i}]")
    sub.check_keys(FACT_KEYS)
    raw = item.get("value")
    if raw is None or isinstance(raw, (dict, list)):
        raise RecipeError(f"{where}.value", "is required and must be a string, number or boolean")
    fact = Fact(
        file=sub.get("file", str, DEFAULT_FACTS_FILE),
        section=sub.get("section", str, required=True),
        option=sub.get("option", str, required=True),
        # Ansible's ini_file writes Python's str(): true → "True".
        value=str(raw),
    )
    fact = check_fact(fact, where=where, error=RecipeError)
    # Ansible folds option names to lower case and refuses a file where two collide.
    key = (fact.file, fact.section, fact.option.lower())
    clash = next(
        (f for f in before if (f.file, f.section, f.option.lower()) == key and f.option != fact.option), None
    )
    if clash is not None:
        raise RecipeError(f"{where}.option", f"{fact.option!r} differs from {clash.option!r} only in case")
    return fact


def read_name(venv: TableReader) -> str:
    name = venv.get("name", str, required=True).strip()
    if not name:
        raise venv.fail("name", "must not be empty")
    if not NAME_RE.fullmatch(name):
        raise venv.fail("name", f"{name!r} is not a valid artifact name (lowercase letters, digits, . _ -)")
    return name


def read_version(venv: TableReader) -> str:
    version = venv.get("version", str, required=True).strip()
    if not TAG_RE.fullmatch(version):
        raise venv.fail("version", f"{version!r} is not usable as a tag (letters, digits, . _ + -)")
    return version


def check_lines(path: Path, lists: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse conflicting pins, and read the local files the lists include now, so that a bad line
    in one, or a file including itself, is named before any build (remote ones: at build time)."""
    check_pins(
        [(f"{path}: venv.global-constraints", c) for c in lists["global-constraints"]]
        + [(f"{path}: venv.constraints", c) for c in lists["constraints"]]
    )
    for key, lines in lists.items():
        expand(
            [(line, f"{path}: venv.{key}") for line in lines],
            kind="requirements" if key == "packages" else "constraints",
            base=str(path.parent.resolve()),
            read=_read_local_only,
        )


def _read_local_only(target: str, where: str) -> bytes:
    if is_url(target) and not target.startswith("file:"):
        return b""
    return read_local(target, where)


class Problems:
    """Where a recipe's faults go: raised at the first (loading), or all kept (checking).

    Each independent part of a recipe is read as one ``step``: a fault in it is kept and the part
    takes a stand-in value, so that the reading goes on and names the other parts' faults too.
    A value that still holds Jinja is that key's one fault: what its checks say of it is noise.
    """

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.errors: list[RecipeError] = []
        self.templated: list[str] = []

    def report(self, error: RecipeError) -> None:
        if not self.collect:
            raise error
        if not any(_same_key(error.where, t) for t in self.templated):
            self.errors.append(error)

    def template(self, error: RecipeError) -> None:
        self.report(error)
        self.templated.append(error.where)

    def step(self, read: Callable[[], T], stand_in: T) -> T:
        if not self.collect:
            return read()
        try:
            return read()
        except RecipeError as exc:
            self.report(exc)
            return stand_in


def _same_key(a: str, b: str) -> bool:
    """Whether key paths ``a`` and ``b`` are one key, or one is inside the other."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


def templates(path: Path, data: Mapping[str, Any]) -> list[RecipeError]:
    """Return a fault for each value that still holds Jinja (``import-role --keep-templates`` writes
    them for a person to fill in): no build or target renders it, so it would fail there, or worse, work."""
    return [
        RecipeError(
            f"{path}: {key}", f"still holds Jinja ({value!r:.60}): put the value Ansible would render here"
        )
        for key, _, value in walk(data)
        if isinstance(value, str) and is_template(value)
    ]
