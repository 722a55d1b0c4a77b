"""The role's scenario, shared by its test modules: target roots reached with the chroot connection,
the build host's folders, Debian's nginx serving its web root, and ``ansible-playbook site.yml``
(tests/resources/role) run against them, with readers of what the playbook printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import check_user_args
from tests.integration.conftest import LocalIndex
from tests.integration.roots import run
from tests.needs import ROOT, require
from tests.nginx import Nginx
from venvship.install.zipapp import build_zipapp

REPO = Path(__file__).resolve().parents[3]
RESOURCES = REPO / "tests" / "resources" / "role"
ROLES = REPO / "ansible" / "roles"
BIN = Path(sys.executable).parent
DEST = "/openstack/venvs/keystone-31.0.0"
# Where the role serves the layout below the web root: per release and distro/arch, as os-releases/.
WEB_PATH = "os-releases/31.0.0/debian-12-x86_64/venvship/keystone-31.0.0"
PLAYBOOK_TIMEOUT = 900


@dataclass
class Deployment:
    """Two target roots, a build host's folders, and ``ansible-playbook site.yml`` to run against them."""

    work: Path
    roots: dict[str, Path]
    env: dict[str, str]
    inventory: Path
    web: Nginx
    runs: list[str] = field(default_factory=list)

    def converge(self, *extra: str, ok: bool = True) -> dict[str, dict[str, int]]:
        """Run the playbook (``extra`` goes to ansible-playbook); return each host's PLAY RECAP counts.

        ``ok=False``: the run must fail.
        """
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(RESOURCES / "site.yml"), *extra]
        proc = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT, check=False
        )
        self.runs.append(proc.stdout)
        print(proc.stdout[proc.stdout.rfind("PLAY RECAP") :])  # shown with -s, and on a failure
        assert (proc.returncode == 0) == ok, proc.stdout[-6000:] + proc.stderr[-3000:]
        return recap(proc.stdout)

    def live(self, host: str) -> str:
        """Return the generation the host's venv path points at."""
        return os.readlink(self.roots[host] / DEST.lstrip("/"))

    def restarts(self, host: str) -> int:
        """Return how many times the caller's `venv changed` handler ran on the host."""
        log = self.roots[host] / "var/log/keystone-restarts"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def pull(self, host: str, *argv: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """Run venv-pull inside the host's root (``ok=False``: let it fail)."""
        argv = ("chroot", str(self.roots[host]), "/usr/local/bin/venv-pull", *argv)
        if ok:
            return run(argv, timeout=300)
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)

    def artifact_ref(self) -> str:
        """Return the reference a target installs: the layout the web server serves, and the tag built."""
        [record] = self.work.glob("build/*/*/keystone-31.0.0-artifact.json")
        return f"oci+{self.web.url}/{WEB_PATH}:{json.loads(record.read_text())['ref']}"


def recap(out: str) -> dict[str, dict[str, int]]:
    """Return ``{host: {"ok": N, "changed": N, …}}`` from the PLAY RECAP of ansible-playbook's output."""
    tail = out[out.rindex("PLAY RECAP") :]
    counts = {}
    for line in tail.splitlines()[1:]:
        if ":" in line:
            host = line.split(":", 1)[0].strip()
            counts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return counts


def changed_tasks(out: str) -> list[str]:
    """Return ``TASK [name] host`` for every task of ansible-playbook's output that reported changed."""
    found, task = [], ""
    for line in out.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("]", 1)[0] + "]"
        elif line.startswith("changed: "):
            found.append(f"{task} {line.split()[1]}")
    return found


def package_diffs(out: str) -> dict[str, list[str]]:
    """Return each host's ``-old``/``+new`` lines of the role's package diff in ansible-playbook's output."""
    shown = re.split(
        r"^(?:TASK|RUNNING HANDLER) \[",
        out.split("TASK [python_venv_build : Show the package changes]")[1],
        flags=re.M,
    )[0]
    found: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in shown.splitlines():
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++")):
            lines.append(line)
        elif line.startswith(("changed: [", "ok: [")):
            found[line.split("[", 1)[1].split("]", 1)[0]] = lines
            lines = []
    return found


def mount(root: Path) -> None:
    # Python, Ansible's facts and venv-pull read /proc; the venv's python needs /dev/null and co.
    run(["mount", "-t", "proc", "proc", str(root / "proc")], timeout=60)
    run(["mount", "--bind", "/dev", str(root / "dev")], timeout=60)


def adoptable_venv(root: Path) -> None:
    """Leave at the destination what the original role left: a plain venv, root's, and its facts."""
    run(["chroot", str(root), "/usr/bin/python3", "-m", "venv", "--without-pip", DEST], timeout=120)
    facts = root / "etc/ansible/facts.d"
    facts.mkdir(parents=True)
    (facts / "openstack_ansible.fact").write_text(
        "[keystone]\nneed_db_expand = True\nneed_db_contract = True\nvenv_tag = 31.0.0\ninstall_method = source\n"
    )


def require_ansible() -> None:
    """Skip unless this is root with ansible-playbook and community.general's chroot connection."""
    require(ROOT, "root (chroot targets, a build host's folders)", fix="run the tests as root")
    require(
        (BIN / "ansible-playbook").exists(), "ansible-playbook", fix="install the test group (ansible-core)"
    )
    require(
        subprocess.run(
            [str(BIN / "ansible-doc"), "-t", "connection", "community.general.chroot"],
            capture_output=True,
            timeout=120,
            check=False,
        ).returncode
        == 0,
        "community.general's chroot connection",
        fix="install the test group (the ansible package)",
    )


def chroot_host(host: str, root: Path, **extra: str) -> str:
    """Return the inventory line of ``host``, reached in ``root`` with the chroot connection."""
    more = "".join(f" {key}={value}" for key, value in extra.items())
    return (
        f"{host} ansible_connection=community.general.chroot ansible_host={root}"
        f" ansible_python_interpreter=/usr/bin/python3{more}\n"
    )


def deployment_vars(
    work: Path, *, web: Nginx, local_index: LocalIndex, shared_builders: Path
) -> dict[str, object]:
    """Return the deployment's group_vars/all (what user_variables.yml holds in OpenStack-Ansible),
    with the files they name made under ``work``."""
    cache = work / "build-cache"
    cache.mkdir(mode=0o700)
    (cache / "builders").symlink_to(shared_builders)  # builder venvs shared with the other tests
    upper = work / "upper-constraints.txt"
    upper.write_text("beta==2.0\n")
    (work / "www").mkdir(exist_ok=True)
    release_key = "{{ openstack_release }}/{{ _venv_build_dist_arch }}"
    basename = "{{ venv_install_destination_path | basename }}"
    return {
        # The deployment's own settings (user_variables.yml in OpenStack-Ansible).
        "openstack_release": "31.0.0",
        "venv_tag": "31.0.0",
        "requirements_git_url": str(upper),
        "keystone_pip_packages": ["alpha==1.0"],
        "venv_pip_build_args": " ".join(local_index.pip_args()),
        "venv_build_requirements": ["setuptools", "wheel"],  # the local index has no pbr
        # OpenStack-Ansible gives the repo server's files to the web server's user.
        "venv_build_host_user_name": "nobody",
        "venv_build_host_group_name": "nogroup",
        # Where the build host keeps its files: scratch folders instead of /var/lib, /var/www.
        "venv_build_host_recipe_path": f"{work}/build/{release_key}",
        "venv_build_host_artifact_path": f"{work}/layouts/{release_key}/{basename}",
        "venv_build_host_web_root": f"{work}/www",
        # OpenStack-Ansible's repo URL: the repo servers behind the internal VIP.
        "openstack_repo_url": web.url,
        "venvship_command": str(BIN / "venvship"),
        "venvship_cache_dir": str(cache),
        "venv_pull_pyz_src": str(build_zipapp(work / "venv-pull.pyz")),
        # The roots have no package lists (no network): they hold what the venv needs already.
        "venvship_distro_packages": False,
        "venv_pull_install_options": check_user_args(),
    }


def open_deployment(
    work: Path, *, roots: dict[str, Path], hosts_ini: str, group_vars: dict[str, object], web: Nginx
) -> Deployment:
    """Write the inventory (``hosts_ini``, and ``group_vars`` for all) and return the deployment."""
    inventory = work / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.ini").write_text(hosts_ini)
    (inventory / "group_vars" / "all.yml").write_text(json.dumps(group_vars, indent=2))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "ANSIBLE_ROLES_PATH": f"{ROLES}{os.pathsep}{RESOURCES}",
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    return Deployment(work=work, roots=roots, env=env, inventory=inventory / "hosts.ini", web=web)
