"""Provenance of one per-platform manifest: an in-toto statement with a SLSA v1 provenance
predicate, in a DSSE envelope attached as a referrer (signed when a key is given).

It names the recipe file's sha256, every constraint or requirement file the build read with its
sha256, the inputs digest the config carries, the builder's tool versions and, when the recipe
lies in a git checkout, its commit (and whether the tree had uncommitted changes).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from .._process import run
from ..artifact.documents import CREATED, Manifest, VenvConfig, canonical_json
from ..recipe.recipefile import Recipe
from ..recipe.requirements import is_url
from ..redact import redact_url
from .inputs import Inputs

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:venvship:build:recipe:v1"
BUILDER_ID = "urn:venvship:builder"


def make_statement(
    recipe: Recipe, inputs: Inputs, config: VenvConfig, manifest: Manifest, *, digest: str, subject_name: str
) -> bytes:
    """Return the in-toto statement (JSON bytes) of the manifest ``digest`` built from ``recipe``.

    Example: ``make_statement(recipe, inputs, config, manifest, digest=d, subject_name="demo:1.0-debian-12-amd64-cp311")``
    """
    dependencies: list[dict[str, Any]] = [
        {"uri": _shown(name, recipe.folder), "digest": {"sha256": sha}} for name, sha in inputs.files
    ]
    source = git_revision(recipe.folder)
    if source:
        dependencies.insert(0, source)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": digest.split(":", 1)[1]}}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": {
                        "path": recipe.path.name,
                        "name": recipe.name,
                        "version": recipe.version,
                        "digest": {"sha256": hashlib.sha256(recipe.path.read_bytes()).hexdigest()},
                    },
                    "platform": config.platform_key,
                },
                "internalParameters": {"inputs_digest": config.recipe_digest},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"venvship": __version__, **dict(config.builder)}},
                "metadata": {"finishedOn": manifest.annotations.get(CREATED, "")},
            },
        },
    }
    return canonical_json(statement)


def git_revision(folder: Path) -> dict[str, Any] | None:
    """Return the resolved dependency of the git checkout holding ``folder``, or None outside one
    (or where git is not installed: a build host needs no git)."""
    if shutil.which("git") is None:
        return None
    head = run(["git", "-C", folder, "rev-parse", "HEAD"], check=False, kind="probe")
    if head.returncode != 0:
        return None
    commit = head.stdout.strip()
    remote = run(["git", "-C", folder, "config", "--get", "remote.origin.url"], check=False, kind="probe")
    dirty = run(
        ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"], check=False, kind="probe"
    )
    url = _without_login(remote.stdout.strip()) if remote.returncode == 0 else ""
    entry: dict[str, Any] = {
        "uri": f"git+{url}@{commit}" if url else f"git@{commit}",
        "digest": {"gitCommit": commit},
    }
    if dirty.returncode == 0 and dirty.stdout.strip():
        entry["annotations"] = {"uncommitted_changes": True}
    return entry


def _without_login(url: str) -> str:
    """Return ``url`` without a user or token (``https://ci:TOKEN@host/x`` → ``https://host/x``)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _shown(name: str, folder: Path) -> str:
    """Return a file's name relative to the recipe's folder when it lies below it (URLs redacted)."""
    if is_url(name):
        return redact_url(name)
    try:
        return str(Path(name).resolve().relative_to(folder.resolve()))
    except (ValueError, OSError):
        return name
