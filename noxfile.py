"""venvship's own sessions: build (the main job), tests, lint, bench, zipapp, role."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nox
import nox.command

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "src"))
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

nox.options.sessions = ["build"]
# CI points the session venvs at a fresh folder (.ci/run); a developer keeps .nox.
nox.options.envdir = os.environ.get("VENVSHIP_NOX_ENVDIR", ".nox")
nox.options.default_venv_backend = "uv|virtualenv"

# Debian packages the tests talk to: a real registry, a web server serving a layout, an
# independent OCI client, htpasswd, a distro Python package to symlink, what builds the tests'
# tiny C extension, and what makes the role tests' target roots.
TEST_DEBS = {
    "docker-registry": "/usr/bin/docker-registry",
    "nginx": "/usr/sbin/nginx",
    "skopeo": "/usr/bin/skopeo",
    "apache2-utils": "/usr/bin/htpasswd",
    "python3-six": "/usr/lib/python3/dist-packages/six.py",
    "python3-venv": None,
    "openssl": "/usr/bin/openssl",
    "git": "/usr/bin/git",
    "gcc": "/usr/bin/gcc",
    "debootstrap": "/usr/sbin/debootstrap",  # the role tests' Debian 12 target roots
}


def _missing_debs() -> list[str]:
    missing = []
    for pkg, path in TEST_DEBS.items():
        if path and Path(path).exists():
            continue
        ok = (
            subprocess.run(
                ["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            == "installed"
        )
        if not ok:
            missing.append(pkg)
    return missing


def _ensure_debs(session: nox.Session) -> None:
    if not shutil.which("dpkg-query"):
        session.warn("not a Debian-family host: registry and symlink tests need Debian packages")
        return
    missing = _missing_debs()
    if not missing:
        return
    if os.geteuid() != 0:
        session.error(
            f"missing Debian packages {' '.join(missing)}; run: sudo apt-get install -y {' '.join(missing)}"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", *missing, external=True, env=env)


def _provide_pythons(session: nox.Session) -> dict[str, str]:
    """Return the tests' environment changes that put every Python they run (tests/pythons.py) on PATH.

    A version this machine lacks (on PATH, in pyenv, among uv's) is installed by uv into the
    session's cache: under ``CI=true`` a missing interpreter fails its tests, so CI never skips them.
    """
    sys.path.insert(0, str(ROOT))
    from tests.pythons import TEST_PYTHONS, find_python

    missing = [version for version in TEST_PYTHONS if find_python(version) is None]
    if not missing:
        return {}
    folder = Path(session.cache_dir) / "pythons"
    # uv (from the test group) keeps its pythons, and their python3.X commands, in our folder.
    uv_env = {"UV_PYTHON_INSTALL_DIR": str(folder), "UV_PYTHON_BIN_DIR": str(folder / "bin")}
    session.run("uv", "python", "install", *missing, env=uv_env)
    return {"PATH": os.pathsep.join([str(folder / "bin"), os.environ.get("PATH", os.defpath)])}


@nox.session(python=False)
def build(session: nox.Session) -> None:
    """Build every recipe in recipes/ into the OCI layout build/oci (the main job)."""
    from venvship.noxplugin import build as build_recipes

    build_recipes(session, recipes=session.posargs or ["recipes"], output="oci:build/oci")


ROOT_SUITES_BUILD_UID = 64200  # in no passwd file; the targets suite's own builds take 64100-64104


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (sets up Debian packages and Python dependencies itself)."""
    _ensure_debs(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    session.install("-e", ".")
    env = _provide_pythons(session)  # tests/ is importable from here on
    if session.posargs:
        session.run("pytest", *session.posargs, env=env)
        return
    # The whole suite, as two runs side by side: the Debian-root suites (qemu-emulated arm64 builds,
    # converges over chroots: about a third of the time, mostly one core's), led by the suites that
    # run while their roots are made (tests/suites.py), beside all the rest.
    # Each names its slowest tests, so CI's log shows where its time goes. Builds stop when a
    # process of their build user runs that they did not start (#20): each run builds as a uid of
    # its own (the rest: tests/conftest.py's), and the root suites run venv-pull's health check as
    # daemon.
    from tests.suites import BESIDE_ROOTS, ROOT_SUITES

    suites = [f"tests/integration/{name}" for name in (*BESIDE_ROOTS, *ROOT_SUITES)]
    roots_env = {
        **os.environ,
        **env,
        "PATH": f"{session.bin}{os.pathsep}{env.get('PATH', os.environ['PATH'])}",
    }
    roots_env["VIRTUAL_ENV"] = str(session.virtualenv.location)
    roots_env.update(VENVSHIP_BUILD_USER=str(ROOT_SUITES_BUILD_UID), VENVSHIP_TEST_CHECK_USER="daemon")
    # Not session.create_tmp(): it points TMPDIR at a folder the build user may not reach.
    own = Path(session.virtualenv.location)
    log = own / "root-suites.log"
    cache = f"-o cache_dir={own / 'root-suites-pytest-cache'}"  # pytest's cache is one run's at a time
    roots_env["PYTEST_ADDOPTS"] = f"{os.environ.get('PYTEST_ADDOPTS', '')} {cache}"
    session.log(f"{', '.join(suites)} run beside, into {log}")
    with log.open("w") as out:
        roots = subprocess.Popen(
            [
                str(Path(session.bin) / "pytest"),
                "-q",
                "--durations=25",
                *suites,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=roots_env,
            cwd=ROOT,
        )
        failed = False
        try:
            session.run("pytest", "-q", "--durations=25", *(f"--ignore={s}" for s in suites), env=env)
        except nox.command.CommandFailed:
            failed = True
        except BaseException:
            roots.send_signal(signal.SIGINT)  # pytest's own teardown unmounts the roots
            roots.wait(timeout=600)
            raise
        code = roots.wait()
    print(log.read_text(), end="", flush=True)
    if failed or code != 0:
        session.error(
            f"tests failed (the rest: {'failed' if failed else 'passed'}; the second run: exit {code})"
        )


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing of the rule modules; survivors are reported (see tests/mutation.py).

    Arguments go to tests/mutation.py: modules, ``--sample N``, ``--budget SECONDS``, ``--ci``.
    """
    _ensure_debs(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test", "mutation"))
    session.install("-e", ".")
    session.run("python", "tests/mutation.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict (the tests and benchmarks too: their imports come from the test group);
    ansible-lint on the role."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint", "test"))
    session.install("-e", ".")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "benchmarks")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py", "benchmarks")
    session.run("mypy")
    # The role, as Galaxy would judge it; --offline: nothing is fetched from Galaxy.
    role = "ansible/roles/python_venv_build"
    session.run("ansible-lint", "-c", "ansible/.ansible-lint", "--profile", "production", role)


# The documented way to pack the role for `ansible-galaxy role install` (replace-the-role.md).
ROLE_TARBALL = ("tar", "-czf", "dist/python_venv_build.tar.gz", "-C", "ansible/roles", "python_venv_build")


@nox.session(python=False)
def role(session: nox.Session) -> None:
    """Make dist/python_venv_build.tar.gz: the drop-in role, for `ansible-galaxy role install`."""
    (ROOT / "dist").mkdir(exist_ok=True)
    session.run(*ROLE_TARBALL, external=True)
    session.log("wrote dist/python_venv_build.tar.gz")


@nox.session
def zipapp(session: nox.Session) -> None:
    """Make dist/venv-pull.pyz: the target installer for bare hosts (stdlib only)."""
    from venvship.install.zipapp import build_zipapp

    out = build_zipapp(ROOT / "dist" / "venv-pull.pyz")
    session.log(f"wrote {out}")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: venvship against the named baselines, measured in the same run.

    ``nox -s bench -- [build] [install] [registry] [verify] [fleet] [--recipe recipes/demo.toml] [--runs N]
    [--file-systems both|tmpfs|disk] [--tmpfs DIR] [--fleet-hosts N] [--fleet-path registry|http|both]``;
    results also go to build/bench/results.json (benchmarks/README.md says how to read them).
    """
    from venvship.install.zipapp import build_zipapp

    _ensure_debs(
        session
    )  # docker-registry and skopeo: the registry section's baselines; nginx: fleet's HTTP path
    # The install baselines run the pip and uv the artifacts carry: nothing else to install.
    session.install("-e", ".")
    # A bare host runs venv-pull as a zipapp with the distro's Python: its no-op start is timed too.
    pyz = build_zipapp(ROOT / "build" / "bench" / "venv-pull.pyz")
    session.run("python", "benchmarks/run.py", "--zipapp", str(pyz), *session.posargs)
