"""A write that moves an existing tag to other content is named (old and new digest), and refused
with --immutable-tags; an index tag that only gains platforms has not moved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.integration.registry._support import make_venv_artifact

from venvship.artifact.documents import MANIFEST_TYPE, Descriptor, Index, canonical_json
from venvship.oci.layout import Layout
from venvship.oci.retag import TagMoveRefused, moved


def _index(*digests: str) -> bytes:
    entries = tuple(Descriptor(media_type=MANIFEST_TYPE, digest=d, size=1) for d in digests)
    return canonical_json(Index(manifests=entries).to_json())


def test_what_counts_as_a_move() -> None:
    a, b, c = ("sha256:" + x * 64 for x in "abc")
    assert moved(b"{}", b'{"x": 1}', index=False)
    assert not moved(_index(a), _index(a), index=True)
    assert not moved(_index(a), _index(a, b), index=True)  # a platform added
    assert moved(_index(a, b), _index(a, c), index=True)  # one replaced
    assert moved(_index(a, b), _index(a), index=True)  # one dropped


def test_immutable_tags_refuse_a_move_and_allow_a_new_platform(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "oci")
    make_venv_artifact(layout, tmp_path / "a", immutable_tags=True)
    make_venv_artifact(layout, tmp_path / "b", arch="arm64", immutable_tags=True)  # the index grows
    before = layout.refs()
    with pytest.raises(TagMoveRefused) as err:
        make_venv_artifact(
            layout, tmp_path / "c", wheels=[("x-1.0-py3-none-any.whl", os.urandom(99))], immutable_tags=True
        )
    old = before["demo:1.0-debian-12-amd64-cp311"].digest
    assert str(err.value).startswith(
        f"oci:{layout.root}:demo:1.0-debian-12-amd64-cp311: the tag names {old}; this would move it to sha256:"
    )
    assert str(err.value).endswith(
        " (and 1 more tags); refusing (--immutable-tags): publish the change under a new version"
    )
    assert [m.ref.rsplit(":", 1)[-1] for m in err.value.moves] == ["1.0-debian-12-amd64-cp311", "1.0"]
    assert layout.refs() == before  # nothing was tagged
