"""Where a venv may live: install paths (both sides) and destinations on this host (#10)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path, PurePosixPath
from typing import Iterator

import pytest
from tests.needs import needs_root, require

from venvship.artifact.destinations import check_destination, check_disjoint, check_install_path
from venvship.errors import ArtifactError, InstallError, RecipeError

REFUSED = [
    ("relative", "venvs/x", "must be an absolute path, not 'venvs/x'"),
    ("nul", "/srv/venvs/a\0b", "contains a NUL character"),
    ("dotdot", "/etc/../etc", "'/etc/../etc' is not in normal form: it means /etc"),
    ("double-slash", "//etc", "'//etc' is not in normal form: it means /etc"),
    ("dotdot-below", "/srv/venvs/sub/../victim", "it means /srv/venvs/victim"),
    ("dot", "/srv/./venvs/x", "it means /srv/venvs/x"),
    ("two-trailing-slashes", "/srv/venvs/x//", "it means /srv/venvs/x"),
    ("root", "/", "/ is the root folder"),
    ("opt", "/opt", "/opt is a system folder (directly in /)"),
    ("srv-trailing-slash", "/srv/", "/srv is a system folder (directly in /)"),
    ("tmp", "/tmp", "/tmp is a system folder (directly in /)"),
    ("home", "/home", "/home is a system folder (directly in /)"),
    ("usr", "/usr", "/usr is a system folder (directly in /)"),
    ("usr-local", "/usr/local", "/usr/local is a system folder (directly in /usr)"),
    ("usr-local-child", "/usr/local/venvs", "is a system folder (directly in /usr/local)"),
    ("var-www", "/var/www", "/var/www is a system folder (directly in /var)"),
    ("etc-below", "/etc/venvs/x", "/etc/venvs/x is in /etc, a system tree"),
    ("boot", "/boot/x", "is in /boot, a system tree"),
    ("proc", "/proc/1/root", "is in /proc, a system tree"),
    ("lib64", "/lib64/x", "is in /lib64, a system tree"),
    ("usr-lib", "/usr/lib/python3/dist-packages", "is in /usr/lib, a system tree"),
    ("usr-bin", "/usr/bin/x", "is in /usr/bin, a system tree"),
    ("usr-share", "/usr/share/venvs/x", "is in /usr/share, a system tree"),
    ("usr-local-bin", "/usr/local/bin/x", "is in /usr/local/bin, a system tree"),
    ("var-lib", "/var/lib/dpkg", "/var/lib/dpkg is in /var/lib, a system tree"),
    ("var-cache", "/var/cache/venvship/x", "is in /var/cache, a system tree"),
    ("root-home", "/root", "/root is a system folder (directly in /)"),
    ("user-home", "/home/svc", "/home/svc is a home folder"),
]

ALLOWED = [
    "/openstack/venvs/keystone-31.0.0",
    "/opt/venvs/demo",
    "/opt/demo",
    "/srv/venvs/x",
    "/home/svc/venvs/x",
    "/root/venvs/x",
    "/usr/local/venvs/x",
    "/var/www/app/venv",
    "/tmp/pytest-of-root/venvs/x",
]


@pytest.mark.parametrize(("path", "says"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_install_path_refused_naming_path_and_rule(path: str, says: str) -> None:
    with pytest.raises(ArtifactError) as info:
        check_install_path(path, where="config.install_path")
    message = str(info.value)
    assert message.startswith("config.install_path: ") and says in message
    assert "\n" not in message and "\0" not in message


@pytest.mark.parametrize("path", ALLOWED)
def test_install_path_allowed(path: str) -> None:
    assert check_install_path(path, where="x") == PurePosixPath(path)


def test_install_path_trailing_slash_is_normalised() -> None:
    assert check_install_path("/srv/venvs/x/", where="x") == PurePosixPath("/srv/venvs/x")


def test_install_path_error_type_is_the_callers() -> None:
    with pytest.raises(RecipeError) as info:
        check_install_path("/etc/x", where="r.toml: venv.install-path", error=RecipeError)
    assert info.value.where == "r.toml: venv.install-path"


@pytest.mark.parametrize("path", ["/tmp/demo", "/var/tmp/demo"])
def test_a_path_directly_in_a_folder_every_user_may_write_is_refused_for_root(path: str) -> None:
    parent = path.rsplit("/", 1)[0]
    with pytest.raises(ArtifactError, match=f"{path} is directly in {parent}, which every user may write"):
        check_install_path(path, where="x", as_root=True)
    assert check_install_path(path, where="x") == PurePosixPath(path)  # a user's own venv may go there


@needs_root  # the rule of a destination root installs into
def test_root_refuses_a_destination_directly_in_tmp(tmp_path: Path) -> None:
    with pytest.raises(
        InstallError, match=r"^refusing the destination /tmp/demo: /tmp/demo is directly in /tmp"
    ):
        check_destination(Path("/tmp/demo"), cache=tmp_path / "cache", facts_dir=tmp_path / "facts")


def test_a_recipe_naming_an_install_path_every_target_refuses_does_not_load(tmp_path: Path) -> None:
    from venvship.recipe.recipefile import load_recipe

    recipe = tmp_path / "demo.toml"
    recipe.write_text(
        '[venv]\nname = "demo"\nversion = "1.0"\ninstall-path = "/tmp/demo"\npackages = ["x"]\n'
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert str(info.value) == (
        f"{recipe}: venv.install-path: /tmp/demo is directly in /tmp, which every user may write: "
        "the destination's folder must be one only root can change"
    )


def test_disjoint_install_paths() -> None:
    check_disjoint({"a.toml": PurePosixPath("/srv/venvs/a"), "b.toml": PurePosixPath("/srv/venvs/ab")})
    with pytest.raises(
        RecipeError, match=r"^a\.toml: venv\.install-path: /srv/venvs contains the install path of b\.toml$"
    ):
        check_disjoint({"b.toml": PurePosixPath("/srv/venvs/b"), "a.toml": PurePosixPath("/srv/venvs")})
    with pytest.raises(RecipeError, match=r"/srv/venvs/a is also the install path of b\.toml$"):
        check_disjoint({"a.toml": PurePosixPath("/srv/venvs/a"), "b.toml": PurePosixPath("/srv/venvs/a")})


# -- on this host -------------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A cache and a facts folder as venv-pull's options name them, and a folder for venvs."""
    folders = {name: tmp_path / name for name in ("cache", "facts", "venvs")}
    for folder in folders.values():
        folder.mkdir()
    return folders


def refused(dest: Path, host: dict[str, Path], *others: Path) -> str:
    with pytest.raises(InstallError) as info:
        check_destination(dest, cache=host["cache"], facts_dir=host["facts"], others=others)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_destination_allowed(host: dict[str, Path]) -> None:
    dest = host["venvs"] / "demo"
    same = Path(str(dest))  # the cache records this destination too: that is no conflict
    assert check_destination(dest, cache=host["cache"], facts_dir=host["facts"], others=[same]) == dest


def test_destination_in_or_around_cache_and_facts(host: dict[str, Path]) -> None:
    cache = host["cache"]
    assert refused(cache / "venv", host) == (
        f"refusing the destination {cache / 'venv'}: {cache / 'venv'} is in venv-pull's cache {cache}"
    )
    assert f"{host['facts']} is in the facts folder {host['facts']}" in refused(host["facts"], host)
    parent = cache.parent
    assert f"{parent} contains venv-pull's cache {cache}" in refused(parent, host)


def test_destination_inside_or_around_another_venv(host: dict[str, Path]) -> None:
    other = host["venvs"] / "nova"
    inner = refused(other / "sub", host, other)
    assert inner.endswith(f"{other / 'sub'} is inside the venv destination {other}")
    assert refused(host["venvs"], host, other).endswith(
        f"{host['venvs']} contains the venv destination {other}"
    )


def test_destination_behind_a_symlinked_parent_is_checked_where_it_is(
    host: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "link").symlink_to("/etc")
    message = refused(tmp_path / "link" / "venv", host)
    assert message.endswith("/etc/venv is in /etc, a system tree"), message


def test_destination_not_normal(host: dict[str, Path]) -> None:
    dest = Path(f"{host['venvs']}/x/../../cache/v")
    assert f"it means {host['cache'] / 'v'}" in refused(dest, host)


def test_destination_is_a_users_home(
    host: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake user database at the one seam we cannot reach otherwise: a test must not add a user
    # to the host's passwd to get a home folder outside /home.
    home = host["venvs"] / "svc"
    real = pwd.getpwall()
    fake = pwd.struct_passwd(("svc", "x", 990, 990, "", str(home), "/bin/sh"))
    monkeypatch.setattr(pwd, "getpwall", lambda: [*real, fake])
    assert refused(home, host).endswith(f"{home} is a user's home folder")
    check_destination(home / "venvs" / "x", cache=host["cache"], facts_dir=host["facts"])


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    """A real mount point: a folder bind-mounted on itself (root only), unmounted after."""
    point = tmp_path / "venvs" / "mnt"
    point.mkdir(parents=True)
    proc = subprocess.run(["mount", "--bind", str(point), str(point)], capture_output=True, text=True)
    require(proc.returncode == 0, f"a bind mount ({proc.stderr.strip()})", fix="run the tests as root")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_destination_is_a_mount_point(host: dict[str, Path], mount_point: Path) -> None:
    assert not os.path.ismount(mount_point)  # a bind mount on the same file system: it cannot tell
    assert refused(mount_point, host).endswith(f"{mount_point} is a mount point")
