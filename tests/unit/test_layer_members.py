"""Layer member names: venv-pull's own files in a generation are never a layer's to write."""

from __future__ import annotations

import pytest

from venvship.artifact.layerformat import check_member
from venvship.errors import ArtifactError
from venvship.install.generations import FACTS_PENDING, STATE_FILE

OWN = [
    STATE_FILE,
    FACTS_PENDING,
    f".{STATE_FILE}.abc123.tmp",  # atomic_write's temp file for the state
    "bin/.demo.venvship-tmp",  # record.replace_file's temp file for a relocated script
    f"lib/python3.11/site-packages/{FACTS_PENDING}",
]


@pytest.mark.parametrize("name", OWN)
def test_a_member_named_like_venv_pulls_own_file_is_refused(name: str) -> None:
    with pytest.raises(ArtifactError, match="named like a file of venv-pull's own"):
        check_member(name, where="layer x")


@pytest.mark.parametrize("name", ["lib/python3.11/site-packages/venvship/__init__.py", "bin/venvship"])
def test_ordinary_names_pass(name: str) -> None:
    assert check_member(name, where="layer x") == name
