"""The one exception tree of venvship. Every error carries its data and a message a user can act on."""

from __future__ import annotations

from ._units import human_size


class VenvshipError(Exception):
    """Root of every error venvship raises on purpose."""


class RecipeError(VenvshipError):
    """A recipe is invalid; ``where`` names the file and key path (``recipes/x.toml: venv.name``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class RecipeProblems(VenvshipError):
    """Every fault of a set of recipes at once, one per line (``venvship check``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class ProcessError(VenvshipError):
    """A subprocess failed: carries its argv, return code and the tail of its output."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(f"command failed with exit code {returncode}: {' '.join(argv)}\n{tail}")
        self.argv = argv
        self.returncode = returncode
        self.output = output


class ProcessTimeout(VenvshipError):
    """A subprocess ran out of its time limit and was killed with its whole process group.

    Not a ProcessError: callers that turn a failed command's output into their own error let a
    timeout through as it is, one line naming the limit and how to change it.
    """

    def __init__(self, argv: list[str], *, seconds: float, what: str, variable: str) -> None:
        program = argv[0].rsplit("/", 1)[-1] if argv else "?"
        super().__init__(
            f"{what} ({program}) was killed after {seconds:g}s, its time limit; "
            f"set {variable} to more seconds (0: no limit) to allow longer"
        )
        self.argv = argv
        self.seconds = seconds
        self.variable = variable


class BuildError(VenvshipError):
    """Resolving, building or packaging a recipe failed."""


class ArtifactError(VenvshipError):
    """An artifact or blob is missing, malformed or fails verification."""


class UnverifiedContent(ArtifactError):
    """Content about to be signed carries no signature by a key the signing job trusts."""


class BadReference(ArtifactError):
    """An artifact reference (``oci:DIR:NAME:TAG`` or ``HOST/REPO:TAG``) is malformed or unknown."""


class RegistryError(VenvshipError):
    """A registry request failed (after any retries)."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class InstallError(VenvshipError):
    """Installing a venv on this host failed; the live venv is left as it was."""


class TrustError(InstallError):
    """A program, folder or file venv-pull was asked to run or write into is not one it may trust."""


class DistroError(VenvshipError):
    """Distro packages are missing or could not be installed."""


class DiskFullError(VenvshipError):
    """A file system filled up (ENOSPC): the path written, and the free and needed bytes where known."""

    def __init__(self, path: str, *, free: int | None = None, needed: int | None = None) -> None:
        known = [f"{human_size(free)} free"] if free is not None else []
        known += [f"about {human_size(needed)} needed"] if needed is not None else []
        detail = f" ({', '.join(known)})" if known else ""
        super().__init__(
            f"{path or 'a file'}: no space left on device{detail}; free some space and run again"
        )
        self.path = path
        self.free = free
        self.needed = needed


class PreconditionError(InstallError):
    """What this host lacks for an install, found before any work: one problem per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)
