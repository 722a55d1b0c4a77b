"""Facts about this host and an interpreter on it: distro key, Go architecture and variant, Python
ABI, libc (glibc or musl).

Stdlib only: both the build side and the target side use it.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._process import ISOLATED_CWD, allowed_env, python_argv, run
from ..artifact.documents import PythonInfo
from ..errors import ProcessError, VenvshipError

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
    "armv6l": "arm",
    "armv7l": "arm",
    "armv8l": "arm",  # a 32-bit userland on a 64-bit CPU
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
    shown = executable if executable == path else f"{executable} ({path})"
    try:
        proc = run(python_argv(path, "-c", _PROBE), env=allowed_env(), cwd=ISOLATED_CWD, kind="probe")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except ProcessError as exc:
        # The error names the interpreter and what it said, not the probe script it was given.
        said = " | ".join(exc.output.strip().splitlines()[-3:]) or "no output"
        raise VenvshipError(
            f"python {shown} failed when asked for its version (exit code {exc.returncode}): {said}"
        ) from exc
    except (ValueError, IndexError) as exc:
        raise VenvshipError(f"python {shown} did not answer its version probe as Python does") from exc
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


def normalize_platform(architecture: str, variant: str = "") -> tuple[str, str]:
    """Return ``(architecture, variant)`` in OCI's canonical form, as containerd's ``Normalize``.

    ``arm64/v8`` is plain ``arm64``, ``amd64/v1`` plain ``amd64``, a plain ``arm`` is ``arm/v7``.
    """
    arch, var = architecture.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if var == "v1" else var
    if arch in ("aarch64", "arm64"):
        return "arm64", {"8": "", "v8": "", "v8.0": "", "9": "v9", "9.0": "v9", "v9.0": "v9"}.get(var, var)
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        return "arm", {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(var, var)
    return arch, var


def _level(variant: str) -> tuple[int, int]:
    """Return ``"v8.2"`` as ``(8, 2)`` and ``"v3"`` as ``(3, 0)``; ``(-1, 0)`` if it is not a level."""
    m = re.match(r"^v?(\d+)(?:\.(\d+))?$", variant)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, 0)


def runnable_variants(architecture: str, variant: str = "") -> tuple[str, ...]:
    """Return the variants of ``architecture`` a CPU of ``variant`` runs, best first (normalized).

    Follows containerd's ``platforms.Only`` within one architecture: amd64/v3 runs v3, v2, v1;
    arm/v7 runs v7, v6, v5; arm64/v8.2 runs v8.2, v8.1, v8; arm64/v9.x runs v9.x … v9, then
    v8.{x+5} … v8. Its fallbacks to another architecture (amd64 → 386, arm64 → arm) are left
    out: a venv runs the host's own Python, whose extension modules must match it.
    """
    arch, var = normalize_platform(architecture, variant)
    major, minor = _level(var)
    found = [var]
    if arch == "amd64":
        found += [f"v{n}" for n in range(max(major, 1) - 1, 0, -1)]
    elif arch == "arm":
        found += [f"v{n}" for n in range(major - 1, 4, -1)]
    elif arch == "arm64":
        if var == "":
            major, minor = 8, 0
        if major == 9:
            found += [f"v9.{m}" for m in range(minor - 1, -1, -1)]
            # v9.0 forked from v8.5: v9.x runs v8.{x+5} and older, up to v8.9.
            major, minor = 8, min(minor + 5, 9)
            found.append(f"v8.{minor}")
        if major == 8:
            found += [f"v8.{m}" for m in range(minor - 1, -1, -1)]
    return tuple(dict.fromkeys(normalize_platform(arch, v)[1] for v in found))


# x86-64 microarchitecture levels by the /proc/cpuinfo flags each adds (psABI; pni is SSE3, abm LZCNT).
_AMD64_LEVELS = (
    ("v2", frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"})),
    ("v3", frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})),
    ("v4", frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)


def _first_cpu(path: Path) -> dict[str, str]:
    """Return the fields of the first processor block of a /proc/cpuinfo file (keys lowercased)."""
    fields: dict[str, str] = {}
    try:
        with path.open() as f:
            for line in f:  # a many-core host's file is long: stop after the first block
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def host_variant(machine: str | None = None, *, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Return this host's OCI variant (normalized): the amd64 level, the arm version, else ``""``.

    arm64 reports ``""`` (v8): /proc/cpuinfo does not tell v8.x or v9 apart cheaply.
    """
    machine = (machine or platform.machine()).lower()
    arch = go_arch(machine)
    if arch == "amd64":
        flags = set(_first_cpu(cpuinfo).get("flags", "").split())
        level = ""
        for name, needs in _AMD64_LEVELS:
            if not needs <= flags:
                break
            level = name
        return normalize_platform(arch, level)[1]
    if arch == "arm":
        # The kernel knows the CPU; the machine name (armv7l) is the fallback, as in containerd.
        cpu = _first_cpu(cpuinfo).get("cpu architecture", "")
        m = re.match(r"^(\d)", cpu) or re.match(r"^armv(\d)", machine)
        return normalize_platform(arch, f"v{m.group(1)}" if m else "")[1]
    return ""


def glibc_version() -> str:
    """Return the glibc version this process runs on (``"2.36"``), or ``""`` if it is not glibc."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # musl has no CS_GNU_LIBC_VERSION at all
        libc = ""
    return libc.split(" ")[-1] if libc.startswith("glibc") else ""


def musl_version(text: str) -> str:
    """Return the version the musl loader (or ``ldd``) reports in ``text``, or ``""``."""
    if not text.lstrip().startswith("musl libc"):
        return ""
    m = re.search(r"^Version (\S+)", text, re.M)
    return m.group(1) if m else "unknown"


def detect_musl(loaders: str = "/lib/ld-musl-*.so.1") -> str:
    """Return the musl version of this host (``"1.2.4"``), or ``""`` if it has no musl loader.

    The loader run without arguments prints its version, as ``ldd --version`` does on musl.
    """
    for loader in sorted(glob.glob(loaders)):
        try:
            found = musl_version(run([loader], check=False, kind="probe").stdout)
        except ProcessError:  # a loader of another architecture (multiarch) cannot run here
            continue
        if found:
            return found
    return ""


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
