"""The role on two architectures (#21), as a deployment has them: each distro/arch key has its own
build host, and each target installs what its key's build host built.

The amd64 key: this machine as build host (local connection) and a Debian 12 amd64 root as
target. The arm64 key: the arm64 Debian 12 root the arm64 tests make (qemu-user, cached and
skipped as they are) as build host, with venvship in a venv of its own there, and another copy of
it as target. Both build hosts write into the one web root nginx serves (the repo servers' shared
/var/www/repo), the arm64 one through bind mounts at the same paths; the targets install over
HTTP through the repo URL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.arm64.conftest import (
    TARBALL,
    arm64_root,  # noqa: F401  (a fixture)
    run_in_root,
    venvship_in_root,
)
from tests.integration.conftest import LocalIndex
from tests.integration.roots import remove_root, run, unpack_root
from tests.nginx import start_nginx

from .scenario import (
    BIN,
    DEST,
    Deployment,
    changed_tasks,
    chroot_host,
    deployment_vars,
    mount,
    open_deployment,
    package_diffs,
    require_ansible,
)

TARGETS = {"target1": "debian-12-x86_64", "target3": "debian-12-aarch64"}
BUILD_HOSTS = {"debian-12-x86_64": "build1", "debian-12-aarch64": "build2"}
MACHINES = {"target1": "x86_64", "target3": "aarch64"}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    local_index: LocalIndex,
    shared_builders: Path,
    arm64_root: Path,  # noqa: F811
) -> Iterator[Deployment]:
    require_ansible()
    work = tmp_path_factory.mktemp("role-arm64")
    build2 = arm64_root  # the session's arm64 root: this module's arm64 build host
    roots = {
        "target1": unpack_root(work / "target1"),
        "target3": unpack_root(work / "target3", tarball=TARBALL),
    }
    (work / "www").mkdir()
    (work / "layouts").mkdir()
    web = start_nginx(work / "nginx", root=work / "www")  # the repo servers' web server
    mounted: list[Path] = []
    try:
        for root in roots.values():
            mount(root)
        group_vars = deployment_vars(work, web=web, local_index=local_index, shared_builders=shared_builders)
        # The arm64 build host. Delegated tasks read the target's variables, so a deployment keeps
        # venvship and its cache at one path on every build host: here the paths this machine's
        # have, venvship installed there in a venv of the arm64 root's own. At the same paths as
        # here too: the files the deployment's variables name (the constraints file, the package
        # index), and the shared web root and layouts, bind-mounted.
        venvship_in_root(build2, str(BIN.parent))
        (build2 / str(work / "build-cache").lstrip("/")).mkdir(mode=0o700, parents=True)
        for name in ("www", "layouts"):
            (build2 / str(work / name).lstrip("/")).mkdir(parents=True, exist_ok=True)
            run(["mount", "--bind", str(work / name), str(build2 / str(work / name).lstrip("/"))], timeout=60)
            mounted.append(build2 / str(work / name).lstrip("/"))
        # One kernel, so one host to the build user's lock: the two build hosts' builds (each as
        # nobody) take turns through the host's lock folder, as builds on one machine do.
        locks = Path("/run/venvship/build-users")
        locks.mkdir(mode=0o755, parents=True, exist_ok=True)
        (build2 / str(locks).lstrip("/")).mkdir(mode=0o755, parents=True, exist_ok=True)
        run(["mount", "--bind", str(locks), str(build2 / str(locks).lstrip("/"))], timeout=60)
        mounted.append(build2 / str(locks).lstrip("/"))
        mount(build2)
        mounted += [build2 / "dev", build2 / "proc"]
        shutil.copy(work / "upper-constraints.txt", build2 / str(work / "upper-constraints.txt").lstrip("/"))
        shutil.copytree(local_index.dist, build2 / str(local_index.dist).lstrip("/"), dirs_exist_ok=True)
        hosts_ini = (
            "[repo_all]\n"
            f"build1 ansible_connection=local ansible_python_interpreter={sys.executable}\n"
            + chroot_host("build2", build2)
            + "\n[keystone_all]\n"
            + "".join(chroot_host(host, root) for host, root in roots.items())
        )
        yield open_deployment(work, roots=roots, hosts_ini=hosts_ini, group_vars=group_vars, web=web)
    finally:
        web.stop()
        for point in mounted:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60, check=False)
        for root in roots.values():
            remove_root(root)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def first(deployment: Deployment) -> dict[str, dict[str, int]]:
    return deployment.converge()


def test_each_key_is_built_on_its_own_build_host_and_installed_on_its_targets(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    out = deployment.runs[0]
    build = out.split("TASK [python_venv_build : Build the artifact (venvship build)]")[1].split("TASK [")[0]
    # Each key's first target ran its build, delegated to that key's build host.
    assert sorted(re.findall(r"^changed: \[(\w+) -> (\w+)", build, flags=re.M)) == sorted(
        (host, BUILD_HOSTS[key]) for host, key in TARGETS.items()
    ), build
    served = {path for _, path, status in deployment.web.answers() if status == 200}
    for host, key in TARGETS.items():
        assert first[host]["failed"] == 0 and first[host]["changed"] >= 1, first
        assert deployment.restarts(host) == 1
        # The target installed its own key's layout, over HTTP.
        assert f"/os-releases/31.0.0/{key}/venvship/keystone-31.0.0/index.json" in served, served
        # Its venv runs on its own architecture, C extension included.
        probe = "import platform, beta._speed as s; print(platform.machine(), s.add(2, 3))"
        got = run_in_root(deployment.roots[host], [f"{DEST}/bin/python", "-c", probe], timeout=120)
        assert got.stdout.split() == [MACHINES[host], "5"], got.stderr
        status = json.loads(deployment.pull(host, "status", DEST, "--json").stdout)
        assert status["generations"], status
        facts = (deployment.roots[host] / "etc/ansible/facts.d/openstack_ansible.fact").read_text()
        assert re.search(r"^venv_tag\s*=\s*31\.0\.0$", facts, flags=re.M), facts


def test_a_one_package_change_makes_a_new_generation_on_each_arch_and_changes_nothing_else(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    # One converge for what test_role_converge.py shows in two on amd64 (a rerun changes nothing;
    # a one-package change makes a new generation): every converge here runs emulated, minutes.
    before = {host: deployment.live(host) for host in TARGETS}
    deployment.converge("--diff", "-e", json.dumps({"keystone_pip_packages": ["alpha==1.1"]}))
    for host in TARGETS:
        assert deployment.live(host) != before[host]
        assert deployment.restarts(host) == 2
    assert package_diffs(deployment.runs[-1]) == {host: ["-alpha==1.0", "+alpha==1.1"] for host in TARGETS}
    # What changed on each arch is the build on its own build host, the install and the handler:
    # every other task stayed as the first converge left it, as a rerun would.
    changed = {
        (task, host.strip("[]"))
        for task, _, host in (t.rpartition(" ") for t in changed_tasks(deployment.runs[-1]))
    }
    tasks = (
        "Write the venv's variables",
        "Build the artifact (venvship build)",
        "Record the artifact built",
        "Install the venv (venv-pull install)",
        "Show the package changes",
    )
    expected = {(f"TASK [python_venv_build : {task}]", host) for task in tasks for host in TARGETS}
    expected |= {("RUNNING HANDLER [os_keystone : Restart uwsgi services]", host) for host in TARGETS}
    assert changed == expected, sorted(changed ^ expected)
