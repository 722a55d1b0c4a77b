"""The drop-in python_venv_build role (#21), Molecule-style from pytest: converge, idempotence, verify.

One playbook includes the role exactly as os_keystone does (tests/resources/role), against a
build host (this machine, Debian 12 amd64, local connection) and two targets in Debian 12 amd64
roots reached with community.general's chroot connection. The build host's web root is served by
Debian's nginx on 127.0.0.1, the deployment's repo URL (``openstack_repo_url``), and the targets
install over HTTP from it. The steps share one deployment and run in the order written: each
starts from the state the one before left.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import check_user_args
from tests.integration.conftest import LocalIndex
from tests.integration.registry._support import RegistryServer
from tests.integration.registry.conftest import open_registry  # noqa: F401  (a fixture)
from tests.integration.roots import remove_root, run, unpack_root
from tests.nginx import start_nginx

from .scenario import (
    BIN,
    DEST,
    WEB_PATH,
    Deployment,
    adoptable_venv,
    changed_tasks,
    chroot_host,
    deployment_vars,
    mount,
    open_deployment,
    package_diffs,
    require_ansible,
)

TARGETS = ("target1", "target2")


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex, shared_builders: Path
) -> Iterator[Deployment]:
    require_ansible()
    work = tmp_path_factory.mktemp("role")
    roots = {host: unpack_root(work / host) for host in TARGETS}
    (work / "www").mkdir()
    web = start_nginx(work / "nginx", root=work / "www")  # the repo server's web server
    try:
        for root in roots.values():
            mount(root)
        adoptable_venv(roots["target1"])
        hosts_ini = (
            "[repo_all]\n"
            f"build1 ansible_connection=local ansible_python_interpreter={sys.executable}\n\n"
            "[keystone_all]\n" + "".join(chroot_host(host, root) for host, root in roots.items())
        )
        group_vars = deployment_vars(work, web=web, local_index=local_index, shared_builders=shared_builders)
        yield open_deployment(work, roots=roots, hosts_ini=hosts_ini, group_vars=group_vars, web=web)
    finally:
        web.stop()
        for root in roots.values():
            remove_root(root)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def first(deployment: Deployment) -> dict[str, dict[str, int]]:
    return deployment.converge()


def test_converge_installs_on_both_targets_and_runs_the_handler_once_each(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    for host in TARGETS:
        assert first[host]["failed"] == 0
        assert first[host]["changed"] >= 1, first
        assert deployment.restarts(host) == 1
        assert deployment.live(host).startswith(".keystone-31.0.0.venvship/")
    # The build ran once, for the one distro/arch key both targets share.
    assert deployment.runs[0].count("TASK [python_venv_build : Build the artifact (venvship build)]") == 1


def test_root_builds_from_and_into_root_owned_folders_the_web_root_links_to(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    key = "31.0.0/debian-12-x86_64"
    layout = deployment.work / "layouts" / key / "keystone-31.0.0"
    recipes = deployment.work / "build" / key
    # venv_build_host_user_name (the web server's user) owns none of what root builds from or into.
    for path in [recipes, *recipes.iterdir(), layout, *layout.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o022) == (0, 0, 0), path
    assert sorted(p.name for p in recipes.iterdir()) == [
        "keystone-31.0.0-artifact.json",
        "keystone-31.0.0-role-vars.yml",
        "keystone-31.0.0.toml",
    ]
    link = deployment.work / "www" / "os-releases" / key / "venvship" / "keystone-31.0.0"
    assert link.is_symlink() and link.resolve() == layout.resolve()
    assert json.loads((link / "index.json").read_text())["manifests"]


def test_the_targets_install_over_http_through_the_repo_url(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    served = [
        (path, status) for _, path, status in deployment.web.answers() if path.startswith(f"/{WEB_PATH}/")
    ]
    # Each target read the tags from the layout's index.json, then the blobs by digest, all found.
    assert [path for path, _ in served].count(f"/{WEB_PATH}/index.json") >= len(TARGETS), served
    assert any(path.startswith(f"/{WEB_PATH}/blobs/sha256/") for path, _ in served), served
    assert {status for _, status in served} == {200}, served
    for host in TARGETS:
        # Nothing came through the controller: no copy of the layout on the target.
        assert not (deployment.roots[host] / "var/lib/venvship/incoming").exists()


def test_a_second_converge_changes_nothing(deployment: Deployment, first: dict[str, dict[str, int]]) -> None:
    again = deployment.converge()
    assert {host: again[host]["changed"] for host in TARGETS} == {host: 0 for host in TARGETS}, changed_tasks(
        deployment.runs[-1]
    )
    assert [deployment.restarts(host) for host in TARGETS] == [1, 1]


def test_the_next_play_reads_the_venv_tag_fact(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    # site.yml's second play asserts ansible_local.openstack_ansible.keystone.venv_tag on every
    # host; here the fact files themselves.
    for host in TARGETS:
        facts = (deployment.roots[host] / "etc/ansible/facts.d/openstack_ansible.fact").read_text()
        assert re.search(r"^venv_tag\s*=\s*31\.0\.0$", facts, flags=re.M), facts
    assert "TASK [Read the venv tag each host reports]" in deployment.runs[0]
    assert "ok: [target2]" in deployment.runs[0].split("TASK [Read the venv tag each host reports]")[1]


def test_the_original_roles_venv_was_adopted_and_rollback_returns_to_it(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    live = deployment.live("target1")
    status = json.loads(deployment.pull("target1", "status", DEST, "--json").stdout)
    adopted = [g["generation"] for g in status["generations"] if g["generation"].startswith("original-")]
    assert len(adopted) == 1, status
    deployment.pull("target1", "rollback", DEST, "--json")
    assert deployment.live("target1").endswith("/" + adopted[0])
    facts = (deployment.roots["target1"] / "etc/ansible/facts.d/openstack_ansible.fact").read_text()
    assert "install_method = source" in facts
    # A rollback run twice rolls forward again: the deployment is back where the converge left it.
    deployment.pull("target1", "rollback", DEST, "--json")
    assert deployment.live("target1") == live


def test_check_mode_changes_nothing(deployment: Deployment, first: dict[str, dict[str, int]]) -> None:
    before = {host: deployment.live(host) for host in TARGETS}
    unchanged = deployment.converge("--check")
    assert {host: unchanged[host]["changed"] for host in TARGETS} == {host: 0 for host in TARGETS}
    changed = deployment.converge(
        "--check", "--diff", "-e", json.dumps({"keystone_pip_packages": ["alpha==1.1"]})
    )
    assert all(changed[host]["changed"] >= 1 for host in TARGETS), changed
    # --diff shows what changed in the variables the build host keeps.
    assert "-- alpha==1.0" in deployment.runs[-1] and "+- alpha==1.1" in deployment.runs[-1], deployment.runs[
        -1
    ]
    # venv_rebuild in check mode: venv-pull says it would make a fresh generation, and makes none.
    rebuild = deployment.converge("--check", "-e", json.dumps({"venv_rebuild": True}))
    assert all(rebuild[host]["changed"] >= 1 for host in TARGETS), rebuild
    assert {host: deployment.live(host) for host in TARGETS} == before
    assert [deployment.restarts(host) for host in TARGETS] == [1, 1]


def test_check_and_diff_mode_show_the_packages_a_built_artifact_would_change(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    before = {host: deployment.live(host) for host in TARGETS}
    # The build host builds alpha 1.1; the targets keep alpha 1.0 until an install runs.
    deployment.converge("--tags", "build", "-e", json.dumps({"keystone_pip_packages": ["alpha==1.1"]}))
    assert {host: deployment.live(host) for host in TARGETS} == before
    deployment.converge("--check", "--diff", "-e", json.dumps({"keystone_pip_packages": ["alpha==1.1"]}))
    # venv-pull's dry run names what the artifact would bring; nothing was pulled or made.
    assert package_diffs(deployment.runs[-1]) == {host: ["-alpha==1.0", "+alpha==1.1"] for host in TARGETS}
    assert {host: deployment.live(host) for host in TARGETS} == before
    assert [deployment.restarts(host) for host in TARGETS] == [1, 1]


def test_a_one_package_change_makes_a_new_generation_and_one_handler_run_each(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    before = {host: deployment.live(host) for host in TARGETS}
    deployment.converge("--diff", "-e", json.dumps({"keystone_pip_packages": ["alpha==1.1"]}))
    for host in TARGETS:
        assert deployment.live(host) != before[host]
        assert deployment.restarts(host) == 2
        packages = deployment.pull(host, "status", DEST, "--packages").stdout
        assert "alpha==1.1" in packages, packages
    # --diff shows each target's package change, old version to new.
    assert package_diffs(deployment.runs[-1]) == {host: ["-alpha==1.0", "+alpha==1.1"] for host in TARGETS}


def test_venv_rebuild_makes_a_fresh_generation(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    before = {host: deployment.live(host) for host in TARGETS}
    deployment.converge("-e", json.dumps({"keystone_pip_packages": ["alpha==1.1"], "venv_rebuild": True}))
    for host in TARGETS:
        # The same artifact, a fresh generation: the digest's 12 hex digits with -1 appended.
        assert deployment.live(host) == before[host] + "-1"
        assert deployment.restarts(host) == 3


def test_a_failed_install_fails_with_venv_pulls_error_and_keeps_the_live_venv(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    before = {host: deployment.live(host) for host in TARGETS}
    # --rebuild: a new generation needs the interpreter, whatever the run before left.
    bad = ["--python", "/usr/bin/python3-missing", "--rebuild", *check_user_args()]
    deployment.converge("-e", json.dumps({"venv_pull_install_options": bad}), ok=False)
    alone = deployment.pull(
        "target1", "install", deployment.artifact_ref(), "--json", "--insecure", *bad, ok=False
    )
    error = json.loads(alone.stdout)["error"]
    assert alone.stderr.strip() == f"venv-pull: error: {error}"
    # The task fails with that line as its message, on each host.
    for host in TARGETS:
        assert (
            f'fatal: [{host}]: FAILED! => {{"changed": false, "msg": {json.dumps(error)}}}'
            in deployment.runs[-1]
        )
    assert {host: deployment.live(host) for host in TARGETS} == before


@pytest.mark.registry
def test_a_registry_is_one_variable_away(
    deployment: Deployment,
    first: dict[str, dict[str, int]],
    open_registry: RegistryServer,  # noqa: F811
) -> None:
    registry = {
        "venv_registry": f"{open_registry.host}/openstack",
        "venv_registry_options": ["--insecure"],
    }
    served = len(deployment.web.answers())
    deployment.converge("-e", json.dumps(registry))
    assert deployment.web.answers()[served:] == []  # nothing from the web server
    for host in TARGETS:
        live = deployment.live(host).rsplit("/", 1)[1]
        status = json.loads(deployment.pull(host, "status", DEST, "--json").stdout)
        [generation] = [g for g in status["generations"] if g["generation"] == live]
        # What went live is the registry's tag, by digest.
        tag = f"{open_registry.host}/openstack/keystone:31.0.0"
        inspect = run([str(BIN / "venvship"), "inspect", tag, "--insecure", "--json"], timeout=120)
        assert generation["digest"] in inspect.stdout
    again = deployment.converge("-e", json.dumps(registry))
    assert {host: again[host]["changed"] for host in TARGETS} == {host: 0 for host in TARGETS}, changed_tasks(
        deployment.runs[-1]
    )


def test_no_build_host_for_a_targets_distro_arch_stops_every_host_first(
    deployment: Deployment, first: dict[str, dict[str, int]]
) -> None:
    before = {host: deployment.live(host) for host in TARGETS}
    # Wheels on, but the group named holds no host of debian-12-x86_64: the original's preflight.
    deployment.converge(
        "-e",
        json.dumps({"venv_wheel_build_enable": True, "venv_build_group": "keystone_all_builders"}),
        ok=False,
    )
    for host in TARGETS:
        assert (
            f'fatal: [{host}]: FAILED! => {{"changed": false, "msg": "No build host for distribution/arch '
            'debian-12-x86_64 in group keystone_all_builders; build targets: {}."}'
        ) in deployment.runs[-1]
    assert "TASK [python_venv_build : Build the artifact (venvship build)]" not in deployment.runs[-1]
    assert {host: deployment.live(host) for host in TARGETS} == before
