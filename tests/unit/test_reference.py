"""Reference parsing: a layout on a web server, ``oci+http(s)://HOST[:PORT]/PATH[:NAME[:TAG|@DIGEST]]``."""

from __future__ import annotations

import pytest

from venvship.errors import BadReference
from venvship.oci.reference import HttpLayoutRef, parse_ref

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "oci+https://repo.example:8181/os-releases/31.0/venvs:keystone:31.0.0",
            HttpLayoutRef(
                url="https://repo.example:8181/os-releases/31.0/venvs", name="keystone", tag="31.0.0"
            ),
        ),
        ("oci+http://10.0.0.5/:keystone:1", HttpLayoutRef(url="http://10.0.0.5", name="keystone", tag="1")),
        ("oci+https://repo/venvs", HttpLayoutRef(url="https://repo/venvs")),
        ("oci+https://repo/venvs/:demo", HttpLayoutRef(url="https://repo/venvs", name="demo")),
        # One spelling per layout: the host in lowercase, no default port.
        ("oci+https://Repo.Example:443/venvs", HttpLayoutRef(url="https://repo.example/venvs")),
        ("oci+http://Repo:80/venvs", HttpLayoutRef(url="http://repo/venvs")),
        ("oci+https://[::1]:8443/venvs", HttpLayoutRef(url="https://[::1]:8443/venvs")),
        (
            f"oci+https://repo/v:demo@{DIGEST}",
            HttpLayoutRef(url="https://repo/v", name="demo", digest=DIGEST),
        ),
    ],
)
def test_a_layout_on_a_web_server(text: str, expected: HttpLayoutRef) -> None:
    ref = parse_ref(text)
    assert ref == expected
    assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("oci+https://repo", "name the layout's path"),
        ("oci+https://user:pw@repo/venvs:demo:1", "without login, query or fragment"),
        ("oci+https://repo/venvs?x=1:demo:1", "without login, query or fragment"),
        ("oci+https://repo/venvs:Demo:1", "bad repository name"),
        ("oci+https://repo/venvs:demo:1/2", "bad repository name"),
        # Another spelling of a path a web server resolves (so a policy scope would not see it).
        ("oci+https://repo/good/../evil:demo:1", "must be plain segments"),
        ("oci+https://repo//venvs:demo:1", "must be plain segments"),
        ("oci+https://repo/./venvs:demo:1", "must be plain segments"),
        ("oci+https://repo/%76envs:demo:1", "must be plain segments"),
        ("oci+https://repo:99999/venvs:demo:1", "is not HOST[:PORT]"),
        ("oci+https://re po/venvs:demo:1", "is not HOST[:PORT]"),
        ("oci+https://repo/venvs:demo:-1", "bad tag"),
        ("oci+https://repo/venvs::1", "missing name"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BadReference, match=r".") as info:
        parse_ref(text)
    assert says in str(info.value) and text in str(info.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # ``$`` also matches before a final line break: each part must match whole.
        ("registry.example/demo:1.0\n", "bad tag"),
        ("registry.example/demo\n", "bad repository name"),
        ("registry.example/demo@sha256:" + "0" * 64 + "\n", "bad digest"),
    ],
)
def test_a_line_break_ends_no_reference(text: str, says: str) -> None:
    with pytest.raises(BadReference, match=says):
        parse_ref(text)
