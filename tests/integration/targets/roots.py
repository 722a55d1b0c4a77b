"""The Debian targets of #24 beside this host's Debian 12 amd64: Debian 11 (Python 3.9, no
``tomllib``) and Debian 13 (Python 3.13) on amd64, each building its own platform inside its root
(gcc and the headers for C extensions; ca-certificates brings openssl, for venv-pull's signature
checks); Debian 12 amd64 is the role's root, Debian 12 arm64 the arm64 suite's."""

from __future__ import annotations

from tests.integration.arm64.conftest import ARM64
from tests.integration.roots import DEBIAN12, Root

TARGET_INCLUDE = ("python3", "python3-venv", "python3-dev", "gcc", "libc6-dev", "ca-certificates", "openssl")
BULLSEYE = Root("bullseye", "amd64", TARGET_INCLUDE)
TRIXIE = Root("trixie", "amd64", TARGET_INCLUDE)
# The amd64 roots, made side by side in the background from collection on (the arm64 one needs
# qemu-user first: see the conftest's hook).
AMD64 = (BULLSEYE, DEBIAN12, TRIXIE)
__all__ = ["AMD64", "ARM64", "BULLSEYE", "DEBIAN12", "TRIXIE"]
