"""Distro packages against this host's real dpkg and apt-get (Debian only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.needs import needs, needs_root

from venvship.errors import DistroError
from venvship.host import distro
from venvship.host.distro import BASE_PACKAGES, ensure, pending, plan
from venvship.host.info import distro_family

MISSING = "venvship-no-such-package"

pytestmark = needs(
    distro_family() == "debian" and shutil.which("dpkg-query") is not None,
    "dpkg",
    fix="run the tests on a Debian-family host",
)


def test_plan_adds_the_base_list_and_finds_what_dpkg_lacks() -> None:
    p = plan("install", ["dpkg", MISSING, "dpkg"])
    assert p.family == "debian"
    assert set(BASE_PACKAGES["debian"]["install"]) <= set(p.wanted)
    assert p.wanted == tuple(sorted(set(p.wanted)))
    assert MISSING in p.missing
    assert "dpkg" not in p.missing
    assert p.install_command.startswith("apt-get install -y -q -- ") and MISSING in p.install_command


def test_unprivileged_user_gets_one_error_naming_the_packages_and_the_command(src_for_others: Path) -> None:
    if os.geteuid() != 0:
        with pytest.raises(DistroError) as err:
            ensure("install", [MISSING])
        message = str(err.value)
    else:
        # Drop to nobody for real rather than faking geteuid.
        code = (
            "from venvship.host.distro import ensure\n"
            "from venvship.errors import DistroError\n"
            "try:\n"
            f"    ensure('install', [{MISSING!r}])\n"
            "except DistroError as exc:\n"
            "    print(exc)\n"
        )
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        proc = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", code],
            env={"PYTHONPATH": str(src_for_others), "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=True,
        )
        message = proc.stdout.strip()
    assert "\n" not in message
    assert MISSING in message
    # The base list's packages this host lacks are named too (a fresh host lacks some).
    missing = plan("install", [MISSING]).missing
    assert f"apt-get install -y -q -- {' '.join(missing)}" in message


@needs_root  # apt-get runs only as root
def test_root_install_of_an_unknown_package_fails_with_distro_error() -> None:
    # A huge cache-valid-time keeps apt-get update (network) out of the test.
    with pytest.raises(DistroError, match=f"installing (.*, )?{MISSING} failed"):
        ensure("install", [MISSING], cache_valid_time=10**9, family="debian")


@needs_root  # apt-get runs only as root
def test_root_says_what_it_installs_and_the_command_before_running_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="venvship")
    with pytest.raises(DistroError):
        ensure("install", [MISSING], cache_valid_time=10**9, family="debian")
    missing = " ".join(plan("install", [MISSING]).missing)
    first = caplog.messages[0]  # said before the package manager ran (and failed)
    assert first.startswith(f"install distro packages: install {missing}; running: ")
    assert first.endswith(f"apt-get install -y -q -- {missing}")


def test_latest_upgrades_the_named_packages_and_nothing_else() -> None:
    p, todo = pending("install", ["dpkg", MISSING], state="latest", cache_valid_time=10**9)
    assert todo is not None
    assert todo.upgrade == tuple(name for name in p.wanted if name not in p.missing)
    assert "dpkg" in todo.upgrade and MISSING in todo.install
    # apt-get update first only when the package lists are stale; then one install of the named.
    assert todo.commands[-1] == ("apt-get", "install", "-y", "-q", "--", *p.wanted)
    assert todo.commands[:-1] in ((), (("apt-get", "update", "-q"),))
    text = todo.describe(verb="would run")
    # The base list's packages this host lacks are installed too (a fresh host lacks some).
    upgrade = f"upgrade {' '.join(todo.upgrade)} (distro-package-state = latest)"
    assert text.startswith(f"install distro packages: install {' '.join(p.missing)}; {upgrade}; ")
    assert "would run: " in text and text.endswith(f"apt-get install -y -q -- {' '.join(p.wanted)}")


def test_the_package_manager_gets_no_variable_that_chooses_what_it_runs_or_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a shell that kept another user's environment (su without -) would hand apt and dpkg.
    hostile = {
        "APT_CONFIG": "/home/alice/apt.conf",  # DPkg::Pre-Invoke hooks, run as root
        "DPKG_ADMINDIR": "/home/alice/dpkg",  # the file lists dpkg -L reads
        "LD_PRELOAD": "/home/alice/x.so",
        "PATH": "/home/alice/bin:/usr/bin",
    }
    for key, value in {**hostile, "http_proxy": "http://proxy:3128", "LANG": "C.UTF-8"}.items():
        monkeypatch.setenv(key, value)
    env = distro.package_manager_env({"DEBIAN_FRONTEND": "noninteractive"})
    assert not {"APT_CONFIG", "DPKG_ADMINDIR", "LD_PRELOAD"} & set(env)
    assert "/home/alice" not in env["PATH"]
    assert env["http_proxy"] == "http://proxy:3128" and env["LANG"] == "C.UTF-8"
    assert env["DEBIAN_FRONTEND"] == "noninteractive"
