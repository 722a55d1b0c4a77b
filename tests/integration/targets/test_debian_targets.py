"""Every Debian release a target runs, for real (#24): Debian 11 and 13 (amd64) and Debian 12
arm64 each build their platform inside a debootstrapped root with their own Python (3.9, 3.13,
3.11 under qemu-user), this host builds Debian 12 amd64's; one signed index carries the four; in
each root (Debian 12 amd64's too), its own /usr/bin/python3 runs venv-pull.pyz, which installs
from that one tag the manifest of its release, architecture and Python, and the venv imports the
package and runs its C extension. Debian 11 reads the policy and the mirror file as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import check_user_args
from tests.integration.arm64.conftest import AARCH64, prepare_host
from tests.integration.conftest import LocalIndex
from tests.integration.registry._support import RegistryServer
from tests.integration.registry.conftest import open_registry  # noqa: F401  (a fixture)
from tests.integration.roots import (
    Root,
    mount_proc,
    remove_root,
    run_in_root,
    tarball,
    unpack_root,
    venvship_in_root,
)
from tests.needs import ROOT, require, require_program
from tests.signing import make_key
from venvship.artifact.documents import ANN_PYTHON, Index
from venvship.cli import venv_pull_main, venvship_main
from venvship.install.zipapp import build_zipapp
from venvship.oci.registry import RegistryClient

from .roots import ARM64, BULLSEYE, DEBIAN12, TRIXIE

pytestmark = pytest.mark.registry

RECIPE = """\
[venv]
name = "demo"
version = "1.0"
install-path = "/opt/venvs/demo"
packages = ["alpha"]
build-requirements = ["setuptools", "wheel"]
install-tool = "pip"

[venv.build]
pip-args = ["--no-index", "--find-links", "{index}"]
"""
X86_64 = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64")
# A mirror nothing listens on (the discard port): the install warns that it left it out.
DEAD_MIRROR = "127.0.0.1:9"
# The roots' build users: uids of their own, in no passwd file (neither the host's nor a root's).
BUILD_UIDS = 64100
PROBE = (
    "import sys, platform, beta._speed as s;"
    " print('%d.%d' % sys.version_info[:2], platform.machine(), s.add(2, 3))"
)


@pytest.fixture(scope="module")
def targets() -> dict[str, tuple[Root, str, str, str, str, bool]]:
    """name -> (root, Python, ABI tag, architecture, machine, built in its root)."""
    return {
        "debian-11-amd64": (BULLSEYE, "3.9", "cp39", "amd64", "x86_64", True),
        "debian-12-amd64": (DEBIAN12, "3.11", "cp311", "amd64", "x86_64", False),
        "debian-13-amd64": (TRIXIE, "3.13", "cp313", "amd64", "x86_64", True),
        "debian-12-arm64": (ARM64, "3.11", "cp311", "arm64", "aarch64", True),
    }


@pytest.fixture
def roots(
    tmp_path: Path, targets: dict[str, tuple[Root, str, str, str, str, bool]]
) -> Iterator[dict[str, Path]]:
    """The four roots, unpacked fresh from their cached tarballs side by side; removed afterwards."""
    require(ROOT, "root for Debian roots (debootstrap, chroot, binfmt_misc)", fix="run the tests as root")
    prepare_host()  # the arm64 root runs under qemu-user
    made: dict[str, Path] = {}

    def unpack(name: str) -> None:
        made[name] = unpack_root(tmp_path / name, tarball=tarball(targets[name][0]))
        mount_proc(made[name])  # as on a real host

    try:
        with ThreadPoolExecutor(len(targets)) as pool:
            for done in [pool.submit(unpack, name) for name in targets]:
                done.result()
        yield made
    finally:
        for root in made.values():
            remove_root(root)


def _in_root(root: Path, *argv: str, timeout: float = 1800, env: dict[str, str] | None = None) -> str:
    proc = run_in_root(root, list(argv), timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(argv)} failed in {root}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _build_in_root(root: Path, arch: str, index: Path, host: str, *, uid: int) -> str:
    """Install this checkout of venvship in ``root`` and build the demo there, its build code run
    as ``uid``; return its result.

    Builds of one build user stop when another process of that user runs (#20): the builds side by
    side here and this host's each take a build user of their own.
    Returns the build's ``--json`` output.
    """
    venvship_in_root(root, "/opt/vs", AARCH64 if arch == "arm64" else X86_64)
    shutil.copytree(index, root / "opt/index")
    (root / "opt/demo.toml").write_text(RECIPE.format(index="/opt/index"))
    argv = ["/opt/vs/bin/venvship", "build", "/opt/demo.toml", "--output", f"{host}/targets"]
    argv += ["--insecure", "--no-distro-packages", "--cache-dir", "/opt/cache", "--json"]
    return _in_root(root, *argv, env={"VENVSHIP_BUILD_USER": str(uid)})


def _write_settings(root: Path, suffix: str, host: str, *, key: str) -> None:
    """Write the root's trust policy (``host``/targets signed by ``key``) and mirror file, as
    ``suffix`` (``json`` or ``toml``) says: two mirrors of ``host`` over plain HTTP, first
    :data:`DEAD_MIRROR` (nothing listens there: venv-pull leaves it out with a warning), then
    ``host`` itself."""
    folder = root / "etc/venvship"
    folder.mkdir(parents=True, exist_ok=True)
    if suffix == "json":
        scope = {"match": f"{host}/targets", "require-signature": True, "keys": [key]}
        policy = {"default": {"require-signature": False}, "scope": [scope]}
        mirror = [{"location": location, "insecure": True} for location in (DEAD_MIRROR, host)]
        (folder / "policy.json").write_text(json.dumps(policy))
        (folder / "registries.json").write_text(
            json.dumps({"registry": [{"prefix": host, "mirror": mirror}]})
        )
        return
    (folder / "policy.toml").write_text(
        f'[default]\nrequire-signature = false\n\n[[scope]]\nmatch = "{host}/targets"\n'
        f'require-signature = true\nkeys = ["{key}"]\n'
    )
    mirrors = "".join(
        f'\n[[registry.mirror]]\nlocation = "{location}"\ninsecure = true\n'
        for location in (DEAD_MIRROR, host)
    )
    (folder / "registries.toml").write_text(f'[[registry]]\nprefix = "{host}"\n{mirrors}')


def test_debian_11_12_13_and_arm64_install_from_one_index(
    roots: dict[str, Path],
    targets: dict[str, tuple[Root, str, str, str, str, bool]],
    local_index: LocalIndex,
    open_registry: RegistryServer,  # noqa: F811
    tmp_path: Path,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_program("gcc", package="gcc")  # Debian 12 amd64's platform builds here
    require(shutil.which("openssl") is not None, "openssl", fix="apt-get install openssl")
    host = open_registry.host
    # -- each root's own Python is the one its release ships ---------------------------------------
    for name, (_, python, _, _, machine, _) in targets.items():
        probe = "import sys, platform; print('%d.%d' % sys.version_info[:2], platform.machine())"
        assert _in_root(roots[name], "/usr/bin/python3", "-c", probe).split() == [python, machine], name
    no_tomllib = run_in_root(roots["debian-11-amd64"], ["/usr/bin/python3", "-c", "import tomllib"])
    assert no_tomllib.returncode == 1 and "No module named 'tomllib'" in no_tomllib.stderr

    # -- Debian 11, 13 and 12 arm64 built in their roots, side by side; Debian 12 amd64 here -------
    with ThreadPoolExecutor(3) as pool:
        building = {
            name: pool.submit(_build_in_root, roots[name], arch, local_index.dist, host, uid=BUILD_UIDS + n)
            for n, (name, (_, _, _, arch, _, in_root)) in enumerate(targets.items())
            if in_root
        }
        recipe = tmp_path / "demo.toml"
        recipe.write_text(RECIPE.format(index=local_index.dist))
        here = ["build", str(recipe), "--output", f"{host}/targets", "--insecure", "--cache-dir", str(cache)]
        monkeypatch.setenv("VENVSHIP_BUILD_USER", str(BUILD_UIDS + len(targets)))
        capsys.readouterr()
        assert venvship_main.main([*here, "--json"]) == 0
        outputs = {"debian-12-amd64": capsys.readouterr().out}
        outputs.update((name, done.result()) for name, done in building.items())
    # The build jobs' outputs: what the signing job signs (venvship index --built).
    built_files = []
    for name, out in outputs.items():
        [built] = json.loads(out)["recipes"]
        assert built["ref"] == f"demo:1.0-{name}-{targets[name][2]}" and built["status"] == "built", built
        built_files += ["--built", str(tmp_path / f"{name}.json")]
        (tmp_path / f"{name}.json").write_text(out)

    # -- one signed index over the four ------------------------------------------------------------
    key = make_key(tmp_path / "keys", "release")
    other = make_key(tmp_path / "keys", "other")
    index = ["index", f"{host}/targets/demo:1.0", "--insecure", "--sign-key", str(key.private), *built_files]
    assert venvship_main.main(index) == 0
    _, raw, _ = RegistryClient(host, insecure=True).get_manifest("targets/demo", "1.0")
    entries = Index.from_bytes(raw).manifests
    found = {
        ((e.platform or {}).get("architecture", ""), e.annotations.get(ANN_PYTHON, "")): e.digest
        for e in entries
    }
    assert sorted(found) == sorted((arch, abi) for _, _, abi, arch, _, _ in targets.values())
    assert len(set(found.values())) == 4

    # -- each root installs from the one tag with its own /usr/bin/python3 and the zipapp, side by side
    pyz = build_zipapp(tmp_path / "venv-pull.pyz")

    def install_in(name: str) -> None:
        _, python, abi, arch, machine, _ = targets[name]
        root = roots[name]
        shutil.copy(pyz, root / "opt/venv-pull.pyz")
        keys = root / "etc/venvship/keys"
        keys.mkdir(parents=True)
        shutil.copy(key.public, keys / "release.pub")
        shutil.copy(other.public, keys / "other.pub")
        suffix = "json" if python == "3.9" else "toml"  # Python 3.9 has no tomllib
        install = ["/usr/bin/python3", "/opt/venv-pull.pyz", "install", f"{host}/targets/demo:1.0"]
        install += ["--insecure", "--cache", "/var/cache/venvship", "--facts-dir", "/opt/facts"]
        install += ["--no-distro-packages", "--json", *check_user_args()]
        # Signed by a key the policy does not name: refused, by the policy file of that format.
        _write_settings(root, suffix, host, key="/etc/venvship/keys/other.pub")
        refused = run_in_root(root, install, timeout=600)
        assert refused.returncode == 1, f"{name}: {refused.stdout}{refused.stderr}"
        assert f"refused by /etc/venvship/policy.{suffix}" in refused.stdout + refused.stderr, name
        assert not (root / "opt/venvs/demo").exists(), name
        _write_settings(root, suffix, host, key="/etc/venvship/keys/release.pub")
        proc = run_in_root(root, install, timeout=600)
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"
        result = json.loads(proc.stdout)
        # The mirror file was read: its first mirror was tried, and left out.
        assert f"mirror {DEAD_MIRROR}/targets/demo left out for this run" in proc.stderr, (
            f"{name}: {proc.stderr}"
        )
        assert result["digest"] == found[(arch, abi)] and result["dest"] == "/opt/venvs/demo", name
        got = _in_root(root, "/opt/venvs/demo/bin/python", "-c", PROBE).split()
        assert got == [python, machine, "5"], name

    with ThreadPoolExecutor(len(targets)) as pool:
        for installed in [pool.submit(install_in, name) for name in targets]:
            installed.result()

    # -- this host (Debian 12 amd64, Python 3.11), the same tag: Debian 12 amd64's manifest ---------
    dest = tmp_path / "venvs" / "demo"
    install = ["install", f"{host}/targets/demo:1.0", "--insecure", "--dest", str(dest), "--json"]
    install += ["--cache", str(tmp_path / "blobcache"), "--facts-dir", str(tmp_path / "facts")]
    capsys.readouterr()
    assert venv_pull_main.main([*install, "--no-distro-packages", *check_user_args()]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == found[("amd64", "cp311")]
    got = subprocess.run(
        [dest / "bin" / "python", "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert got.stdout.split() == ["3.11", "x86_64", "5"]
