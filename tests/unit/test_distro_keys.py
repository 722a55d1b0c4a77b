"""Distro keys as the original role makes them, from real /etc/os-release files.

The files under tests/resources/os-release/ are those distros' real /etc/os-release; debian-12
is this test machine's own. Ansible's ``distribution`` fact for each is in Ansible's own test
fixtures (test/units/module_utils/facts/system/distribution/fixtures): RedHat, Rocky,
AlmaLinux, CentOS, Ubuntu, Debian.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from venvship.host.info import distro_family, distro_key, read_os_release

OS_RELEASE = Path(__file__).resolve().parents[1] / "resources" / "os-release"

# fixture file → (distro key, package-manager family). The key is the original role's
# `_venv_build_dist_arch` without the architecture: `distribution | lower`, then Ubuntu's
# version cut to X.Y and everyone else's major version.
DISTROS = {
    "rhel-9.4": ("redhat-9", "redhat"),  # Ansible: distribution "RedHat", not the os-release ID
    "rocky-9.4": ("rocky-9", "redhat"),
    "almalinux-9.4": ("almalinux-9", "redhat"),
    "centos-stream-9": ("centos-9", "redhat"),
    "ubuntu-24.04": ("ubuntu-24.04", "debian"),
    "debian-12": ("debian-12", "debian"),
    "debian-13": ("debian-13", "debian"),
}


@pytest.mark.parametrize("name", sorted(DISTROS))
def test_distro_key_and_family_from_real_os_release(name: str) -> None:
    rel = read_os_release(OS_RELEASE / name)
    assert rel, f"{name}: fixture missing or empty"
    assert (distro_key(rel), distro_family(rel)) == DISTROS[name]


def test_every_os_release_fixture_is_checked() -> None:
    assert sorted(p.name for p in OS_RELEASE.iterdir()) == sorted(DISTROS)


def test_ubuntu_point_release_keeps_x_y() -> None:
    rel = {**read_os_release(OS_RELEASE / "ubuntu-24.04"), "VERSION_ID": "24.04.1"}
    assert distro_key(rel) == "ubuntu-24.04"
