"""The one exception tree of venvship. Every error carries its data and a message a user can act on."""

from __future__ import annotations


class VenvshipError(Exception):
    """Root of every error venvship raises on purpose."""


class RecipeError(VenvshipError):
    """A recipe is invalid; ``where`` names the file and key path (``recipes/x.toml: venv.name``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class ProcessError(VenvshipError):
    """A subprocess failed: carries its argv, return code and the tail of its output."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(f"command failed with exit code {returncode}: {' '.join(argv)}\n{tail}")
        self.argv = argv
        self.returncode = returncode
        self.output = output


class BuildError(VenvshipError):
    """Resolving, building or packaging a recipe failed."""


class ArtifactError(VenvshipError):
    """An artifact or blob is missing, malformed or fails verification."""


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
