"""Resolve a recipe's requirements to the full closure with pip's installation report.

The report names, for every distribution, exactly where it comes from (an index file and its
sha256, a VCS commit, a local folder), which is what the wheel cache is keyed on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from ..errors import BuildError, ProcessError
from ..redact import redact_url
from .piplog import explain, log_args
from .sandbox import Sandbox
from .toolvenv import Builder

SourceKind = Literal["wheel", "sdist", "vcs", "dir"]


@dataclass(frozen=True)
class Resolved:
    """One distribution of the closure and the identity of its source."""

    name: str
    version: str
    kind: SourceKind
    spec: str  # what pip gets to fetch or build exactly this source: "name @ URL"
    source: str  # identity the wheel cache is keyed on
    sha256: str | None  # of the archive, when pip knows it
    url: str | None = None  # a direct URL's archive (not an index's): where from, published (no token)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def cacheable(self) -> bool:
        return self.kind != "dir"


class ResolutionError(BuildError):
    """pip could not resolve the requirements; carries pip's error lines and the index pages it
    could not fetch (``unreachable``: when any, the network, not the recipe, is the likely cause)."""

    def __init__(self, detail: str, *, unreachable: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.unreachable = unreachable


def _archive_hash(info: dict[str, Any]) -> str | None:
    hashes = info.get("hashes") or {}
    if "sha256" in hashes:
        return str(hashes["sha256"])
    legacy = str(info.get("hash", ""))
    return legacy.split("=", 1)[1] if legacy.startswith("sha256=") else None


def _item(entry: dict[str, Any]) -> Resolved:
    meta = entry["metadata"]
    name, version = str(meta["name"]), str(meta["version"])
    info = entry["download_info"]
    url = str(info["url"])
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        ref = f"{vcs['vcs']}+{url}@{vcs['commit_id']}"
        return Resolved(
            name=name, version=version, kind="vcs", spec=f"{name} @ {ref}", source=ref, sha256=None
        )
    if "dir_info" in info:
        return Resolved(
            name=name, version=version, kind="dir", spec=f"{name} @ {url}", source=f"dir:{url}", sha256=None
        )
    digest = _archive_hash(info.get("archive_info") or {})
    kind: SourceKind = "wheel" if url.split("#", 1)[0].endswith(".whl") else "sdist"
    source = f"{kind}:sha256:{digest}" if digest else f"{kind}:{url}"
    return Resolved(
        name=name,
        version=version,
        kind=kind,
        spec=f"{name} @ {url}",
        source=source,
        sha256=digest,
        url=download_url(url) if entry.get("is_direct") else None,
    )


def download_url(url: str) -> str | None:
    """Return where a direct URL's archive came from as the artifact may say it (no user info,
    query or hash), or None for a file on the build host, which names nothing a reader can fetch."""
    return None if url.startswith("file:") else redact_url(url.split("#", 1)[0])


def resolve(
    builder: Builder,
    requirements: Sequence[str],
    *,
    constraint_args: Sequence[str],
    pip_args: Sequence[str],
    sandbox: Sandbox,
    name: str,
    extra_args: Sequence[str] = (),
) -> list[Resolved]:
    """Return the closure of ``requirements`` under the constraints, sorted by name.

    pip runs in ``sandbox`` (``name``: its folders there): it may build sdists' metadata, whose
    code must not be able to change the report, so the report comes over a pipe.
    """
    inbox = sandbox.shared(name)
    given = [Path(arg) for flag, arg in zip(constraint_args, constraint_args[1:]) if flag == "-c"]
    copies = sandbox.local_folders([*requirements, *(f.read_text() for f in given)])

    def local(text: str) -> str:
        for url in sorted(copies, key=len, reverse=True):
            text = text.replace(url, copies[url])
        return text

    if copies:  # the constraint files name the folders too: the same copies, or pip sees a conflict
        renamed = {str(f): inbox / f"constraints-{n}.txt" for n, f in enumerate(given)}
        for f in given:
            renamed[str(f)].write_text(local(f.read_text()))
        constraint_args = [str(renamed.get(arg, arg)) for arg in constraint_args]
    req_file = inbox / "requirements.txt"
    req_file.write_text("".join(f"{local(r)}\n" for r in requirements))
    log = sandbox.outbox(name) / "pip.log"
    argv = builder.pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        *log_args(log),
        "--report",
        "-",
        "--no-build-isolation",
        *constraint_args,
        *pip_args,
        *extra_args,
        "-r",
        req_file,
    )
    try:
        proc = sandbox.run(argv, env=builder.env, kind="resolve", merge_stderr=False)
    except ProcessError as exc:
        files = [req_file, *(arg for flag, arg in zip(argv, argv[1:]) if flag in ("-c", "-r"))]
        failure = explain(exc.output, log, files=files)
        raise ResolutionError(failure.detail, unreachable=failure.unreachable) from exc
    try:
        data = json.loads(proc.stdout)
        items = [_item(e) for e in data.get("install", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildError(f"pip's installation report cannot be read ({exc})") from exc
    # A folder is known by where it is, not by where this build copied it (its spec builds the copy).
    originals = {copy: url for url, copy in copies.items()}
    items = [
        dataclasses.replace(i, source=f"dir:{originals[i.source[4:]]}")
        if i.kind == "dir" and i.source[4:] in originals
        else i
        for i in items
    ]
    return sorted(items, key=lambda r: r.name.lower())
