"""Facts about this host and an interpreter on it: distro key, Go architecture, Python ABI, glibc.

Stdlib only: both the build side and the target side use it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from ._process import run
from .artifact import PythonInfo
from .errors import VenvshipError

# Python's machine names → the Go names OCI platforms use.
GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "i686": "386",
    "armv7l": "arm",
}

_PROBE = r"""
import json, os, platform, sys, sysconfig
abi = "cp%d%d" % sys.version_info[:2] if sys.implementation.name == "cpython" else sys.implementation.cache_tag
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    abi += "t"
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    libc = ""
print(json.dumps({"implementation": sys.implementation.name, "version": platform.python_version(),
    "abi": abi, "machine": platform.machine(), "glibc": libc.split(" ")[-1] if libc.startswith("glibc") else "",
    "executable": sys.executable, "purelib": sysconfig.get_paths()["purelib"]}))
"""


@dataclass(frozen=True)
class Interpreter:
    """An interpreter found on this host and what it reports about itself."""

    info: PythonInfo
    path: str
    machine: str
    glibc: str


def find_python(executable: str) -> str:
    """Return the absolute path of ``executable`` (a name on PATH or a path)."""
    found = executable if os.sep in executable else shutil.which(executable)
    if not found or not os.path.exists(found):
        raise VenvshipError(f"python executable {executable!r} not found on this host")
    return os.path.abspath(found)


def probe_python(executable: str) -> Interpreter:
    """Return what ``executable`` reports: implementation, version, ABI tag, machine, glibc."""
    path = find_python(executable)
    data = json.loads(run([path, "-I", "-c", _PROBE]).stdout.strip().splitlines()[-1])
    return Interpreter(
        info=PythonInfo(
            implementation=data["implementation"],
            version=data["version"],
            abi=data["abi"],
            executable=executable,
        ),
        path=path,
        machine=data["machine"],
        glibc=data["glibc"],
    )


def go_arch(machine: str | None = None) -> str:
    """Return the Go architecture name of ``machine`` (default: this host's)."""
    machine = (machine or platform.machine()).lower()
    return GO_ARCH.get(machine, machine)


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """Return the key/value pairs of an os-release file (empty if it is missing)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


# Ansible's `distribution` fact, lowercased, where it is not the os-release ID: the original role
# keys venv_build_targets by it (RHEL is "RedHat", Amazon Linux "Amazon", Oracle "OracleLinux").
_ANSIBLE_DISTRIBUTION = {"rhel": "redhat", "amzn": "amazon", "ol": "oraclelinux"}


def distro_key(os_release: dict[str, str] | None = None) -> str:
    """Return the distro key as the original role computes it (``debian-12``, ``ubuntu-24.04``).

    That is ``ansible_facts['distribution'] | lower`` (spaces → ``_``), then Ubuntu's
    ``distribution_version`` cut to X.Y and everyone else's ``distribution_major_version``.
    """
    rel = read_os_release() if os_release is None else os_release
    distro = rel.get("ID", "unknown").lower()
    distro = _ANSIBLE_DISTRIBUTION.get(distro, distro).replace(" ", "_")
    version = rel.get("VERSION_ID", "")
    if distro == "ubuntu":
        version = ".".join(version.split(".")[:2])
    else:
        version = version.split(".")[0]
    if not version:
        # Rolling releases (Debian sid, Arch) have no VERSION_ID; the codename is the best key.
        version = rel.get("VERSION_CODENAME", "rolling")
    return f"{distro}-{version}"


def distro_family(os_release: dict[str, str] | None = None) -> str:
    """Return ``debian`` or ``redhat`` (the package-manager family) or the raw ID."""
    rel = read_os_release() if os_release is None else os_release
    ids = {rel.get("ID", "").lower(), *rel.get("ID_LIKE", "").lower().split()}
    if ids & {"debian", "ubuntu"}:
        return "debian"
    if ids & {"rhel", "fedora", "centos", "rocky", "almalinux"}:
        return "redhat"
    return rel.get("ID", "unknown").lower()


def version_tuple(text: str) -> tuple[int, ...]:
    """Return ``"2.36"`` as ``(2, 36)``; non-numeric parts count as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in text.split(".")) if text else ()
