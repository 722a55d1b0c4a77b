"""Release families (#22): venvs of one recipe name in per-release folders, as OpenStack-Ansible
lays them out (``keystone-30.0.0``, ``keystone-31.0.0``), shown together by ``status`` and pruned
by ``prune --keep-releases N``: the oldest folders beyond the N last installed go with their
generations, never one that a symlink beside it or a running process still uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from venvship.artifact.documents import Fact

from .conftest import Artifacts, Pull, Wheels

VERSIONS = ("28.0.0", "29.0.0", "30.0.0", "31.0.0")


def _release(pull: Pull, version: str) -> Pull:
    return Pull(
        tmp=pull.tmp, dest=pull.dest.parent / f"keystone-{version}", cache=pull.cache, facts=pull.facts
    )


def test_releases_are_one_family_and_the_oldest_unused_ones_are_pruned(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    releases = {}
    for version in VERSIONS:
        releases[version] = _release(pull, version)
        releases[version].install(artifacts.write([wheels.demo1], name="keystone", version=version))
    newest_first = [str(releases[v].dest) for v in reversed(VERSIONS)]

    status = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)
    assert [(v["dest"], v["family"]) for v in status["venvs"]] == [(d, "keystone") for d in newest_first]
    text = pull("status", "--cache", str(pull.cache)).stdout
    assert text.splitlines()[0] == f"release family keystone (newest first): {', '.join(newest_first)}"

    # 30.0.0 is what the service's stable path points at; a process still runs from 29.0.0.
    os.symlink("keystone-30.0.0", pull.dest.parent / "keystone")
    runner = subprocess.Popen(
        [str(releases["29.0.0"].dest / "bin" / "python"), "-c", "import time; time.sleep(120)"],
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        time.sleep(0.5)  # started: its command line names the release
        proc = pull("prune", "--cache", str(pull.cache), "--keep-releases", "1", "--json")
        result = json.loads(proc.stdout)
        assert result["releases"] == [str(releases["28.0.0"].dest)]
        assert result["in_use"] == [
            f"{releases['30.0.0'].dest}: the symlink {pull.dest.parent / 'keystone'} points at it",
            f"{releases['29.0.0'].dest}: process {runner.pid} runs from it "
            f"({releases['29.0.0'].dest}/bin/python)",
        ]
    finally:
        runner.kill()
        runner.wait(timeout=30)
    gone = releases["28.0.0"].dest
    assert not os.path.lexists(gone) and not os.path.lexists(gone.parent / f".{gone.name}.venvship")
    assert [p.name for p in pull.dest.parent.iterdir() if p.name.startswith(".keystone-28")] == []
    listed = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)["venvs"]
    assert [v["dest"] for v in listed] == newest_first[:3]

    # Once the process is gone, 29.0.0 goes; 30.0.0 stays while the symlink points at it, and
    # the newest stays always.
    text = pull("prune", "--cache", str(pull.cache), "--keep-releases", "1").stdout
    assert f"removed release {releases['29.0.0'].dest}" in text
    os.unlink(pull.dest.parent / "keystone")
    pull("prune", "--cache", str(pull.cache), "--keep-releases", "1")
    listed = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)["venvs"]
    assert [v["dest"] for v in listed] == newest_first[:1]
    assert pull.python("import demo; print(demo.VERSION)", dest=releases["31.0.0"].dest) == "1.0"


def test_a_release_folder_venv_pull_did_not_make_is_never_removed(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    old, new = _release(pull, "30.0.0"), _release(pull, "31.0.0")
    old.install(artifacts.write([wheels.demo1], name="keystone", version="30.0.0"))
    new.install(artifacts.write([wheels.demo1], name="keystone", version="31.0.0"))
    # Someone replaced the old release's symlink with a folder of their own.
    os.unlink(old.dest)
    old.dest.mkdir()
    (old.dest / "notes.txt").write_text("mine\n")
    result = json.loads(pull("prune", "--cache", str(pull.cache), "--keep-releases", "1", "--json").stdout)
    assert result["releases"] == []
    assert (old.dest / "notes.txt").read_text() == "mine\n"
    assert (old.dest.parent / f".{old.dest.name}.venvship").is_dir()


def test_prune_without_keep_releases_keeps_every_release(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    for version in ("30.0.0", "31.0.0"):
        _release(pull, version).install(artifacts.write([wheels.demo1], name="keystone", version=version))
    result = json.loads(pull("prune", "--cache", str(pull.cache), "--json").stdout)
    assert "releases" not in result
    assert all((pull.dest.parent / f"keystone-{v}").is_symlink() for v in ("30.0.0", "31.0.0"))


def test_rolling_a_release_back_keeps_its_venv_and_rebuild_writes_its_facts(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    """As the how-to says: the previous release's venv is still there and live after the upgrade,
    and installing its artifact again with --rebuild writes its facts back, pulling nothing."""
    refs = {}
    for version in ("30.0.0", "31.0.0"):
        facts = [Fact(file="openstack_ansible", section="keystone", option="venv_tag", value=version)]
        refs[version] = artifacts.write([wheels.demo1], name="keystone", version=version, facts=facts)
        _release(pull, version).install(refs[version])
    fact = pull.facts / "openstack_ansible.fact"
    assert "venv_tag = 31.0.0" in fact.read_text()
    old = _release(pull, "30.0.0")
    assert pull.python("import demo; print(demo.VERSION)", dest=old.dest) == "1.0"
    again = old.install(refs["30.0.0"])
    assert again["changed"] is False and "venv_tag = 31.0.0" in fact.read_text()
    rebuilt = old.install(refs["30.0.0"], "--rebuild")
    assert rebuilt["changed"] is True and rebuilt["facts_written"] is True and "pulled" not in rebuilt
    assert "venv_tag = 30.0.0" in fact.read_text()


def test_an_artifact_s_name_alone_makes_no_release_of_a_family(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    """The recipe name is the artifact's word: a venv in a folder not named after it, or in another
    folder, is no release of that family and never pushes its releases out."""
    keystone = _release(pull, "30.0.0")
    keystone.install(artifacts.write([wheels.demo1], name="keystone", version="30.0.0"))
    liar = artifacts.write([wheels.demo1], name="keystone", version="99.0.0")
    glance = Pull(tmp=pull.tmp, dest=pull.dest.parent / "glance-31.0.0", cache=pull.cache, facts=pull.facts)
    glance.install(liar)
    elsewhere = pull.tmp / "other-venvs" / "keystone-99.0.0"
    Pull(tmp=pull.tmp, dest=elsewhere, cache=pull.cache, facts=pull.facts).install(liar)

    result = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)
    assert {v["dest"]: v["family"] for v in result["venvs"]} == {
        str(keystone.dest): "keystone",
        str(glance.dest): "",
        str(elsewhere): "keystone",
    }
    assert "release family" not in pull("status", "--cache", str(pull.cache)).stdout
    pruned = json.loads(pull("prune", "--cache", str(pull.cache), "--keep-releases", "1", "--json").stdout)
    assert pruned["releases"] == [] and keystone.dest.is_symlink()
