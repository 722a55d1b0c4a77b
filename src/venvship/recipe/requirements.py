"""Requirement and constraint lines as recipes and pip files give them.

Every line form a pip requirements or constraints file takes is understood: comments and blank
lines, ``-r``/``-c`` includes (a path relative to the file or recipe that names it, or a URL),
``===`` pins, markers and extras, ``#egg=`` fragments, direct URLs (``git+https``, ``git+file``,
``file:`` and archive URLs, with or without a name), per-requirement options (``--hash``) and
other pip options. Includes are expanded here, not by pip: every file read is known (its content
goes into the inputs digest) and a file that includes itself is one error, not a pip traceback.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Union
from urllib.parse import unquote, urljoin, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from ..errors import RecipeError
from ..redact import redact_url

# The bare form OpenStack-Ansible used for years: git+URL@sha#egg=name[&subdirectory=...]
_VCS = re.compile(r"^(?P<url>(?:git|hg|svn|bzr)\+[^\s#]+)#(?P<fragment>\S+)$")
# pip's own comment rule: "#" at the start or after whitespace ("#egg=" inside a URL is no comment).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_INCLUDE = re.compile(
    r"^(?P<opt>-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=^-[rc]))(?P<target>\S+)$"
)
_EDITABLE = re.compile(r"^(-e|--editable)(\s|=|$)")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip")
MAX_DEPTH = 20
MAX_LOCAL_SIZE = 32 << 20

IncludeKind = Literal["requirements", "constraints"]


@dataclass(frozen=True)
class Include:
    """A ``-r`` or ``-c`` line: another file (path or URL) whose lines count as requirements or constraints."""

    kind: IncludeKind
    target: str
    option: str = ""  # as written: -r, --requirement, -c or --constraint

    def line(self, target: str) -> str:
        """Return this include's line naming ``target`` instead (a path made absolute)."""
        return f"{self.option or ('-r' if self.kind == 'requirements' else '-c')} {target}"


@dataclass(frozen=True)
class Option:
    """Any other pip option line (``--index-url``, ``--pre`` ...), passed to pip as written."""

    text: str


@dataclass(frozen=True)
class Req:
    """A requirement: its PEP 508 text and the per-requirement options that followed it (``--hash``)."""

    text: str
    options: str = ""

    @property
    def line(self) -> str:
        return f"{self.text} {self.options}" if self.options else self.text

    @property
    def requirement(self) -> Requirement:
        return Requirement(self.text)


Line = Union[Include, Option, Req]


def is_url(text: str) -> bool:
    """Return whether ``text`` is a URL (``https://…``, ``file:///…``) rather than a path."""
    return bool(_URL.match(text))


def _split_options(line: str) -> tuple[str, str]:
    """Split ``line`` as pip does: the requirement, then everything from the first ``-`` token on."""
    tokens = line.split(" ")
    for n, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:n]).strip(), " ".join(tokens[n:]).strip()
    return line, ""


def _name_from_archive(url: str) -> str | None:
    """Return the distribution name of an archive URL or path (``…/foo-1.0.tar.gz`` → ``foo``)."""
    name = posixpath.basename(unquote(urlsplit(url).path if is_url(url) else url))
    try:
        if name.endswith(".whl"):
            return str(parse_wheel_filename(name)[0])
        return str(parse_sdist_filename(name)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    stem = next((name[: -len(s)] for s in _ARCHIVES if name.endswith(s)), "")
    base, sep, _ = stem.rpartition("-")
    return base if sep and base else None


def normalize_requirement(text: str, where: str, *, base: str | None = None) -> str:
    """Return ``text`` as a PEP 508 requirement; raise RecipeError naming ``where`` if it is none.

    ``git+URL@sha#egg=name`` becomes ``name @ git+URL@sha``; an unnamed archive URL or path takes
    its name from the file name (``https://h/foo-1.0.tar.gz`` → ``foo @ https://h/foo-1.0.tar.gz``);
    a relative path becomes a ``file:`` URL against ``base`` (a folder, or the URL of the file
    naming it), or stays as written when ``base`` is None.
    """
    vcs = _VCS.match(text)
    parts = vcs.group("fragment").split("&") if vcs else []
    names = [p[4:] for p in parts if p.startswith("egg=")]
    if vcs and names:
        # Other fragment parts (subdirectory=) still matter to pip; only egg= becomes the name.
        rest = "&".join(p for p in parts if not p.startswith("egg="))
        text = f"{names[0]} @ {vcs.group('url')}" + (f"#{rest}" if rest else "")
    elif _looks_like_location(text):
        text = _located(text, where)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        # packaging's message goes on with the text and a caret line; errors are one line.
        reason = str(exc).splitlines()[0]
        raise RecipeError(where, f"invalid requirement {text!r}: {reason}") from exc
    if req.url and not is_url(req.url) and base is not None:
        located = (
            urljoin(base, req.url) if is_url(base) else Path(base, req.url).expanduser().resolve().as_uri()
        )
        text = text.replace(req.url, located, 1)
    return text


def _looks_like_location(text: str) -> bool:
    head = text.split(";", 1)[0].strip()
    if " " in head or "@" in head.split("://", 1)[0]:
        return False  # "name @ url" or a spec with spaces
    return is_url(head) or head.startswith(("./", "../", "/", "~"))


def _located(text: str, where: str) -> str:
    """Return ``name @ LOCATION`` for an unnamed URL or path requirement (marker kept)."""
    head, sep, marker = text.partition(";")
    location = head.strip()
    fragment = urlsplit(location).fragment if is_url(location) else ""
    egg = [p[4:] for p in fragment.split("&") if p.startswith("egg=")]
    name = egg[0] if egg else _name_from_archive(location)
    if not name:
        raise RecipeError(
            where, f"cannot tell the distribution of {location!r}: write it as NAME @ {location}"
        )
    if location.startswith("/"):
        location = Path(location).as_uri()
    return f"{name} @ {location}" + (f" ;{marker}" if sep else "")


def parse_line(text: str, where: str, *, base: str | None = None) -> Line | None:
    """Return what one requirements/constraints line says, or None for a blank or comment line.

    Example: ``parse_line("-c upper.txt", "recipes/x.toml: venv.constraints[0]")`` → ``Include(...)``
    """
    line = _COMMENT.sub("", text).strip()
    if not line:
        return None
    include = _INCLUDE.match(line)
    if include:
        kind: IncludeKind = (
            "requirements" if include.group("opt") in ("-r", "--requirement") else "constraints"
        )
        return Include(kind=kind, target=include.group("target"), option=include.group("opt"))
    if _EDITABLE.match(line):
        raise RecipeError(
            where, f"{line!r}: editable installs cannot go into an artifact; name the source instead"
        )
    if line.startswith("-"):
        return Option(line)
    req, options = _split_options(line)
    return Req(text=normalize_requirement(req, where, base=base), options=options)


def check_line(base: Path) -> Callable[[str, str], str]:
    """Return a recipe list check: one line as given, with a local include made absolute (it must
    exist) and a requirement normalised; "" for a comment or blank line (dropped)."""

    def check(text: str, where: str) -> str:
        parsed = parse_line(text, where, base=str(base))
        if parsed is None:
            return ""
        if isinstance(parsed, Include):
            if is_url(parsed.target):
                return parsed.line(parsed.target)
            path = (base / Path(parsed.target).expanduser()).resolve()
            if not path.is_file():
                raise RecipeError(where, f"{parsed.kind} file not found: {parsed.target} (looked at {path})")
            return parsed.line(str(path))
        return parsed.text if isinstance(parsed, Option) else parsed.line

    return check


def check_requirement(text: str, where: str) -> str:
    """A recipe list check for lists of plain requirements (build requirements): no includes or options."""
    parsed = parse_line(text, where)
    if parsed is None:
        return ""
    if not isinstance(parsed, Req):
        raise RecipeError(where, f"{text!r}: only requirements go here, not pip options or files")
    return parsed.line


# -- expanding includes ----------------------------------------------------------------------------

Reader = Callable[[str, str], bytes]  # (path or URL, where) → the file's bytes


@dataclass
class Expanded:
    """Lines of a list with every include expanded: requirements, constraints, options, files read."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (where from, content), in read order


def read_local(target: str, where: str) -> bytes:
    """The default :data:`Reader` for local files (``file:`` URLs too); URLs are refused."""
    if is_url(target):
        parts = urlsplit(target)
        if parts.scheme != "file":
            raise RecipeError(where, f"{target}: remote files are fetched at build time only")
        target = unquote(parts.path)
    try:
        with Path(target).open("rb") as f:
            data = f.read(MAX_LOCAL_SIZE + 1)
    except FileNotFoundError as exc:
        raise RecipeError(where, f"file not found: {target}") from exc
    except OSError as exc:
        raise RecipeError(where, f"cannot read {target}: {exc.strerror or exc}") from exc
    if len(data) > MAX_LOCAL_SIZE:
        raise RecipeError(where, f"{target}: larger than {MAX_LOCAL_SIZE >> 20} MiB")
    return data


def is_remote(target: str) -> bool:
    """Return whether ``target`` is fetched over the network (an http or https URL)."""
    return is_url(target) and urlsplit(target).scheme.lower() in ("http", "https")


def _fetched_line(text: str, where: str, base: str) -> Line | None:
    """Return a line of a file fetched by URL, which is data: http(s) includes and pins only (no
    local file, source or option). Errors never quote it: it may hold whatever a server chose."""
    line = _COMMENT.sub("", text).strip()
    if not line:
        return None
    include = _INCLUDE.match(line)
    if include:
        target = urljoin(base, include.group("target"))
        if not is_remote(target):
            raise RecipeError(where, "a fetched file may include only http(s) URLs, not local files")
        kind: IncludeKind = (
            "requirements" if include.group("opt") in ("-r", "--requirement") else "constraints"
        )
        return Include(kind=kind, target=target, option=include.group("opt"))
    if line.startswith("-"):
        raise RecipeError(where, "pip options are not accepted in a fetched file")
    try:
        req = Requirement(line)
    except InvalidRequirement:
        req = None
    pins = list(req.specifier) if req is not None else []
    if (
        req is None
        or req.url
        or req.extras
        or len(pins) != 1
        or pins[0].operator not in ("==", "===")
        or "*" in pins[0].version
    ):
        raise RecipeError(where, "a fetched file carries only NAME==VERSION pins (with markers)")
    return Req(text=line)


def expand(
    lines: list[tuple[str, str]],
    *,
    kind: IncludeKind,
    base: str,
    read: Reader = read_local,
    into: Expanded | None = None,
    _stack: tuple[str, ...] = (),
) -> Expanded:
    """Return ``lines`` ((text, where) pairs of one list, ``kind`` lines) with includes expanded.

    Lines of a ``-r`` file are requirements and of a ``-c`` file constraints, whatever includes
    them (as pip reads them). Relative targets are taken against the including file's folder (or
    URL), the list's own against ``base``. A file that includes itself, directly or not, or
    includes nested deeper than :data:`MAX_DEPTH`, is a RecipeError naming the chain.
    """
    out = into if into is not None else Expanded()
    fetched = is_remote(base)
    for text, where in lines:
        parsed = _fetched_line(text, where, base) if fetched else parse_line(text, where, base=base)
        if parsed is None:
            continue
        if isinstance(parsed, Option):
            out.options.append(parsed.text)
        elif isinstance(parsed, Req):
            (out.requirements if kind == "requirements" else out.constraints).append(parsed.line)
        else:
            target = _resolve(parsed.target, base)
            shown = redact_url(target) if is_url(target) else target
            if target in _stack:
                chain = " → ".join(
                    redact_url(t) if is_url(t) else t for t in (*_stack[_stack.index(target) :], target)
                )
                raise RecipeError(where, f"includes itself: {chain}")
            if len(_stack) >= MAX_DEPTH:
                raise RecipeError(where, f"includes nested deeper than {MAX_DEPTH} files: {shown}")
            content = read(target, where)
            out.files.append((target, content))
            try:
                body = content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecipeError(where, f"{shown}: not UTF-8 text") from exc
            expand(
                [(ln, f"{where}: {shown}:{n}") for n, ln in _logical_lines(body)],
                kind=parsed.kind,
                base=_folder_of(target),
                read=read,
                into=out,
                _stack=(*_stack, target),
            )
    return out


def _resolve(target: str, base: str) -> str:
    if is_url(target):
        return target
    if is_url(base):
        return urljoin(base, target)
    return str((Path(base) / Path(target).expanduser()).resolve())


def _folder_of(target: str) -> str:
    if is_url(target):
        return target  # urljoin against the file's URL takes its folder
    return str(Path(target).parent)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Return (line number, line) pairs with backslash continuations joined, as pip reads a file."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = n
        if raw.endswith("\\") and not _COMMENT.search(raw):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        out.append((start, " ".join(p.strip() for p in pending)))
        pending = []
    if pending:
        out.append((start, " ".join(p.strip() for p in pending)))
    return out


def check_pins(lines: list[tuple[str, str]]) -> None:
    """Refuse two inline ``==`` pins of one distribution that disagree; ``lines`` are (where, line)."""
    pins: dict[str, tuple[str, str]] = {}
    for where, line in lines:
        parsed = parse_line(line, where)
        if not isinstance(parsed, Req):
            continue
        req = parsed.requirement
        exact = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if req.marker is not None or not exact:
            continue
        name = canonicalize_name(req.name)
        if name in pins and pins[name][1] != exact[0]:
            other_where, other = pins[name]
            raise RecipeError(
                where, f"conflicting pins for {req.name}: {exact[0]} here, {other} at {other_where}"
            )
        pins[name] = (where, exact[0])
