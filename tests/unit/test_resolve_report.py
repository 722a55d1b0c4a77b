"""How one entry of pip's installation report becomes a distribution of the closure: its source
(the wheel cache's key) and, for a direct URL only, where its archive came from."""

from __future__ import annotations

from typing import Any

from venvship.builder.resolve import _item

SHA = "d" * 64


def _entry(url: str, *, direct: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": "pkg", "version": "1.0"},
        "is_direct": direct,
        "download_info": {"url": url, "archive_info": {"hashes": {"sha256": SHA}}},
    }


def test_a_direct_urls_archive_is_named_without_its_token() -> None:
    got = _item(_entry("https://ci:TOKEN@files.example/pkg-1.0.tar.gz?sig=SECRET#sha256=" + SHA, direct=True))
    assert got.url == "https://files.example/pkg-1.0.tar.gz"
    assert got.source == f"sdist:sha256:{SHA}"  # the cache key does not depend on where it came from


def test_an_index_file_or_a_local_file_names_no_url() -> None:
    assert _item(_entry("https://pypi.example/pkg-1.0-py3-none-any.whl", direct=False)).url is None
    assert _item(_entry("file:///srv/dist/pkg-1.0.tar.gz", direct=True)).url is None
