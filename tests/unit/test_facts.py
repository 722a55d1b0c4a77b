"""Facts are checked again where they become a file and INI lines, as root (#10)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from venvship.artifact.documents import Fact
from venvship.errors import InstallError
from venvship.install.facts import facts_now, write_facts

GOOD = Fact(file="openstack_ansible", section="keystone", option="venv_tag", value="31.0.0")


@pytest.mark.parametrize(
    ("fact", "says"),
    [
        (
            Fact(file="../escaped", section="s", option="o", value="v"),
            "facts[1].file: '../escaped' is not a plain",
        ),
        (Fact(file="..", section="s", option="o", value="v"), "facts[1].file: '..' is not a plain name"),
        (Fact(file="f", section="s]\n[injected", option="o", value="v"), "facts[1].section: "),
        (Fact(file="f", section="DEFAULT", option="o", value="v"), "facts[1].section: 'DEFAULT' is reserved"),
        (Fact(file="f", section="s", option="o = x\n[t]\np", value="v"), "facts[1].option: "),
        (
            Fact(file="f", section="s", option="o", value="v\n[injected]\nroot = yes"),
            "facts[1].value: must be one",
        ),
        (Fact(file="f", section="s", option="o", value="v\rw"), "facts[1].value: must be one line"),
        (
            Fact(file="f", section="s", option="o", value="v\0"),
            "facts[1].value: must be one line without NUL",
        ),
    ],
)
def test_unsafe_fact_is_refused_before_anything_is_written(tmp_path: Path, fact: Fact, says: str) -> None:
    with pytest.raises(InstallError) as info:
        write_facts(tmp_path / "facts.d", [GOOD, fact])
    assert str(info.value).startswith(says) and "\n" not in str(info.value)
    assert not list(tmp_path.rglob("*"))


def test_percent_is_escaped_so_that_ansible_reads_the_file(tmp_path: Path) -> None:
    # Ansible reads .fact files with a default ConfigParser(): a bare % makes the whole file unreadable.
    facts_dir = tmp_path / "facts.d"
    write_facts(
        facts_dir,
        [GOOD, Fact(file="openstack_ansible", section="keystone", option="url", value="a%2Fb %(x)s")],
    )
    parser = configparser.ConfigParser()
    parser.read(facts_dir / "openstack_ansible.fact")
    assert parser.get("keystone", "url") == "a%2Fb %(x)s"
    assert facts_now(facts_dir, [GOOD])[0].value == "31.0.0"
    url = Fact(file="openstack_ansible", section="keystone", option="url", value="")
    assert facts_now(facts_dir, [url])[0].value == "a%2Fb %(x)s"


def test_options_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    facts_dir = tmp_path / "facts.d"
    write_facts(facts_dir, [GOOD])
    before = (facts_dir / "openstack_ansible.fact").read_bytes()
    clash = Fact(file="openstack_ansible", section="keystone", option="Venv_Tag", value="32")
    with pytest.raises(InstallError) as info:
        write_facts(facts_dir, [clash])
    assert "'venv_tag' and 'Venv_Tag' differ only in case" in str(info.value)
    assert (facts_dir / "openstack_ansible.fact").read_bytes() == before


def test_ansible_reads_what_was_written(tmp_path: Path) -> None:
    """Real ansible-core's local facts collection over the files write_facts made."""
    facts_dir = tmp_path / "facts.d"
    write_facts(
        facts_dir,
        [GOOD, Fact(file="openstack_ansible", section="keystone", option="url", value="50%")],
    )
    ansible = Path(sys.executable).parent / "ansible"
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [
            str(ansible),
            "localhost",
            "-c",
            "local",
            "-m",
            "setup",
            "-a",
            "filter=ansible_local",
            "-a",
            f"fact_path={facts_dir}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    data = json.loads(out.split("=>", 1)[1])
    assert data["ansible_facts"]["ansible_local"]["openstack_ansible"]["keystone"] == {
        "venv_tag": "31.0.0",
        "url": "50%",
    }
