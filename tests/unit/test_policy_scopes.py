"""Which policy scope a reference falls under: one origin per scope, one spelling per served layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvship.errors import InstallError
from venvship.oci.reference import parse_ref
from venvship.verify.policy import Policy, Rule, load_policy

OPEN = Rule(source="scope", require_signature=False)
STRICT = Rule(source="default", require_signature=True)


def test_a_registry_scope_covers_its_own_port_only() -> None:
    """``reg.example`` is port 443: a registry another user runs on port 5000 of the same host
    falls under the default rule, not under the scope that trusts the host's own registry."""
    policy = Policy(path=None, default=STRICT, scopes={"reg.example": OPEN, "oci:/srv/oci": OPEN})
    assert policy.rule_for(parse_ref("reg.example/venvs/demo:1")) is OPEN
    assert policy.rule_for(parse_ref("reg.example:5000/venvs/demo:1")) is STRICT
    assert policy.rule_for(parse_ref("oci:/srv/oci:demo:1")) is OPEN


def test_a_served_layouts_scope_is_read_in_the_spelling_references_have(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[[scope]]\nmatch = "oci+https://Repo.Example:443/venvs/"\n'
        '[[scope]]\nmatch = "oci+http://repo.example"\n'
    )
    policy = load_policy(path)
    assert set(policy.scopes) == {"oci+https://repo.example/venvs", "oci+http://repo.example/"}
    assert (
        policy.rule_for(parse_ref("oci+https://REPO.example/venvs:demo:1"))
        is policy.scopes["oci+https://repo.example/venvs"]
    )
    assert policy.rule_for(parse_ref("oci+http://repo.example:8080/venvs:demo:1")) is policy.default


@pytest.mark.parametrize(
    ("match", "says"),
    [
        ("oci+https://repo/good/../evil", "must be plain segments"),
        ("oci+https://repo/venvs:demo:1.0", "no tag or digest"),
    ],
)
def test_a_served_layouts_scope_that_names_no_one_layout_is_an_error(
    tmp_path: Path, match: str, says: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'[[scope]]\nmatch = "{match}"\n')
    with pytest.raises(InstallError, match=rf"{path}: scope\[0\]\.match: .*{says}"):
        load_policy(path)
