"""This host's facts as venvship's artifacts name them (platform key, Python tag, site folder),
derived where the tests run instead of written down for one image (Debian 12, amd64, 3.11)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig

from venvship.artifact.venvconfig import platform_key
from venvship.host.info import distro_key, go_arch

ABI = "cp{}{}".format(*sys.version_info[:2])  # the interpreter running the tests, which builds with it


def platform_key_for(abi: str) -> str:
    """Return this host's platform key for a Python of ``abi`` (``debian-12-amd64-cp311`` on one)."""
    return platform_key(distro=distro_key(), architecture=go_arch(), abi=abi)


PLATFORM_KEY = platform_key_for(ABI)
# The tags of a wheel with a C extension built here for that interpreter (``cp311-cp311-linux_x86_64``).
NATIVE_WHEEL_TAGS = f"{ABI}-{ABI}-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}"


def python_fact(python: str, expression: str) -> str:
    """Return what ``expression`` (about ``sys``) prints under ``python``: ``"sys.implementation.cache_tag"``."""
    code = f"import sys; print({expression})"
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def site_folder(python: str) -> str:
    """Return the venv-relative site-packages folder of ``python``'s venvs (``lib/python3.11/site-packages``)."""
    version = python_fact(python, "'%d.%d' % sys.version_info[:2]")
    return f"lib/python{version}/site-packages"
