"""The package-manager commands venvship would run, per distro, without running them.

Debian's apt-get runs for real in test_distro.py; dnf and rpm exist only on paper here: these
tests pin the exact argv for each distro of tests/resources/os-release/ (docs/reference/platforms.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from venvship.errors import DistroError
from venvship.host.distro import (
    BASE_PACKAGES,
    DistroPlan,
    Side,
    State,
    install_argv,
    install_commands,
    query_argv,
    wanted_packages,
)
from venvship.host.info import distro_family, read_os_release

OS_RELEASE = Path(__file__).resolve().parents[1] / "resources" / "os-release"
RHEL_FAMILY = ["rhel-9.4", "rocky-9.4", "almalinux-9.4", "centos-stream-9"]
DEBIAN_FAMILY = ["debian-12", "debian-13", "ubuntu-24.04"]


def _family(name: str) -> str:
    return distro_family(read_os_release(OS_RELEASE / name))


@pytest.mark.parametrize("name", RHEL_FAMILY)
def test_rhel_family_commands(name: str) -> None:
    fam = _family(name)
    assert install_argv(fam, "present", ["libxml2", "gcc"]) == [
        "dnf",
        "install",
        "-y",
        "--",
        "libxml2",
        "gcc",
    ]
    assert install_argv(fam, "latest", ["libxml2"]) == ["dnf", "upgrade", "-y", "--", "libxml2"]
    assert query_argv(fam, "python3-devel") == ["rpm", "-q", "python3-devel"]


@pytest.mark.parametrize("name", DEBIAN_FAMILY)
def test_debian_family_commands(name: str) -> None:
    fam = _family(name)
    # The "--" ends apt-get's options: whatever follows is a package name.
    argv = ["apt-get", "install", "-y", "-q", "--", "libxml2"]
    assert install_argv(fam, "present", ["libxml2"]) == argv
    assert install_argv(fam, "latest", ["libxml2"]) == argv  # apt-get install upgrades what is installed


@pytest.mark.parametrize(
    ("name", "side", "base"),
    [
        # vars/redhat.yml of the original role
        (n, "build", ("autoconf", "cmake", "gcc", "gcc-c++", "python3-devel", "python3-packaging"))
        for n in RHEL_FAMILY
    ]
    + [(n, "install", ("python3-packaging",)) for n in RHEL_FAMILY]
    # vars/debian.yml
    + [
        (
            n,
            "build",
            (
                "cmake",
                "g++",
                "python3-dev",
                "python3-packaging",
                "python3-pkgconfig",
                "python3-setuptools",
                "python3-venv",
            ),
        )
        for n in DEBIAN_FAMILY
    ]
    + [(n, "install", ("python3-packaging", "python3-setuptools", "python3-venv")) for n in DEBIAN_FAMILY],
)
def test_base_lists_per_distro(name: str, side: Side, base: tuple[str, ...]) -> None:
    fam = _family(name)
    assert wanted_packages(side, [], family=fam) == base
    assert set(BASE_PACKAGES[fam][side]) == set(base)


def test_latest_on_rhel_installs_the_missing_then_upgrades_the_rest() -> None:
    # dnf upgrade fails on a package that is not installed ("available, but not installed").
    p = DistroPlan(family="redhat", wanted=("gcc", "libxml2", "python3-packaging"), missing=("libxml2",))
    assert install_commands(p, "latest") == [
        ["dnf", "install", "-y", "--", "libxml2"],
        ["dnf", "upgrade", "-y", "--", "gcc", "python3-packaging"],
    ]
    assert install_commands(p, "present") == [["dnf", "install", "-y", "--", "libxml2"]]
    nothing_missing = DistroPlan(family="redhat", wanted=("gcc",), missing=())
    assert install_commands(nothing_missing, "present") == []
    assert install_commands(nothing_missing, "latest") == [["dnf", "upgrade", "-y", "--", "gcc"]]


def test_latest_on_debian_is_one_install_of_everything() -> None:
    p = DistroPlan(family="debian", wanted=("g++", "libxml2-dev"), missing=("libxml2-dev",))
    assert install_commands(p, "latest") == [["apt-get", "install", "-y", "-q", "--", "g++", "libxml2-dev"]]
    assert install_commands(p, "present") == [["apt-get", "install", "-y", "-q", "--", "libxml2-dev"]]


def test_install_command_shown_to_a_person_is_the_argv() -> None:
    p = DistroPlan(family="redhat", wanted=("gcc", "libxml2"), missing=("gcc", "libxml2"))
    assert p.install_command == "dnf install -y -- gcc libxml2"


@pytest.mark.parametrize("family", ["debian", "redhat"])
def test_a_name_starting_with_a_dash_is_refused(family: str) -> None:
    # "--allow-unauthenticated" once reached apt-get as an option.
    for call in (
        lambda: install_argv(family, "present", ["libxml2", "--allow-unauthenticated"]),
        lambda: wanted_packages("install", ["-oAPT::Get::AllowUnauthenticated=1"], family=family),
        lambda: query_argv("redhat", "-a"),
    ):
        with pytest.raises(DistroError) as err:
            call()
        (line,) = str(err.value).splitlines()
        assert "starts with '-'" in line


def test_an_unknown_family_has_no_package_manager() -> None:
    with pytest.raises(DistroError, match="no package manager known for distro family 'arch'"):
        install_argv("arch", "present", ["gcc"])


@pytest.mark.parametrize("family", ["debian", "redhat"])
@pytest.mark.parametrize("state", ["present", "latest"])
def test_no_package_manager_run_without_package_names(family: str, state: State) -> None:
    # `dnf upgrade -y --` with no names upgrades every package of the host.
    with pytest.raises(DistroError, match="no distro packages named"):
        install_argv(family, state, [])
    nothing = DistroPlan(family=family, wanted=(), missing=())
    assert install_commands(nothing, state) == []
