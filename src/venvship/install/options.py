"""What ``venv-pull install`` is asked to do (:class:`InstallOptions`) and what it reports
(:class:`InstallResult`, the ``--json`` document)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Mapping

from ..oci.source import Access
from .registries import MirrorOptions

if TYPE_CHECKING:
    from ..venvformat.bytecode import BytecodeResult

DEFAULT_CACHE = Path("/var/cache/venvship")
DEFAULT_FACTS = Path("/etc/ansible/facts.d")


@dataclass(frozen=True)
class InstallOptions:
    """What ``venv-pull install`` was asked to do (the reference itself is passed on its own)."""

    dest: Path | None = None
    cache: Path = DEFAULT_CACHE
    facts_dir: Path = DEFAULT_FACTS
    keep: int = 2
    rebuild: bool = False
    compile: bool = True
    check: bool = False
    lock_timeout: float | None = None
    adopt: bool = False  # keep a venv venv-pull did not make at the destination as a generation
    check_command: str | None = None
    check_user: str | None = "nobody"  # who runs the health check when this process is root
    distro_packages: bool = True
    from_wheels: bool = False
    python: str | None = None  # the host interpreter to use instead of the artifact's
    allowed_tools: Collection[str] = ()  # tool wheel sha256s allowed beyond venv-pull's own pins
    policy: Path | None = None  # the trust policy file; None: /etc/venvship/policy.toml (or .json) if there
    access: Access = field(default_factory=Access)  # registry login etc.; never shown
    mirrors: MirrorOptions = field(default_factory=MirrorOptions)  # where else blobs may come from


@dataclass(frozen=True)
class InstallResult:
    """What an install did (or, with ``check``, would do)."""

    changed: bool
    dest: str
    digest: str
    previous_digest: str
    generation: str
    packages: int
    facts_written: bool
    check: bool = False
    bytecode: BytecodeResult | None = None
    pulled: Mapping[str, str] = field(default_factory=dict)  # blob digest → HOST/REPO it came from
    # --check: (name, version) of each distribution the artifact that would go live locks
    lock: tuple[tuple[str, str], ...] = ()

    def to_json(self, *, blobs: bool = False) -> dict[str, object]:
        """Return the ``--json`` document; ``blobs``: also each pulled blob and where it came from."""
        data: dict[str, object] = {
            "changed": self.changed,
            "dest": self.dest,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "generation": self.generation,
            "packages": self.packages,
            "facts_written": self.facts_written,
        }
        if self.check:
            data["check"] = True
            # What a new generation would hold, for a caller's diff (the role's --diff) before any pull.
            data["lock"] = [{"name": name, "version": version} for name, version in self.lock]
        if self.bytecode is not None:
            data["bytecode"] = self.bytecode.to_json()  # only when this run made a generation
        if self.pulled:  # only when this run fetched blobs: how many from each source
            sources = Counter(self.pulled.values())
            data["pulled_from"] = dict(sorted(sources.items()))
            if blobs:  # a hundred digests are noise in a playbook's output, unless asked for
                data["pulled"] = dict(sorted(self.pulled.items()))
        return data
