"""Facts are checked again where they become a file and INI lines, as root (#10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvship.artifact import Fact
from venvship.errors import InstallError
from venvship.install.facts import write_facts

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
