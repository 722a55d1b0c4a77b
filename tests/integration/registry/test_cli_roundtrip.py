"""The command lines against each registry set-up: publish → index → install, and what it costs.

Requests are counted where they land: in the registry's own log (``response completed`` lines).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import pytest

from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.publish import publish_layout
from venvship.oci.reference import RegistryRef

from ._pki import PASSWORD
from ._support import RegistryServer, cli_registry_args, client_for, install_argv, log_mark, requests_between
from .conftest import BuiltDemo

pytestmark = pytest.mark.registry

Main = Callable[[Sequence[str]], int]


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[Main, list[str]], str]:
    """Run a CLI ``main`` in-process with the password on stdin; return its stdout, fail on non-zero."""

    def call(main: Main, argv: list[str]) -> str:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert PASSWORD not in out + err
        return out

    return call


def test_publish_index_install_round_trip(
    any_registry: RegistryServer,
    built_demo: BuiltDemo,
    tmp_path: Path,
    run: Callable[[Main, list[str]], str],
) -> None:
    host, opts = any_registry.host, cli_registry_args(any_registry)
    layout = built_demo.layout
    src = f"oci:{layout.root}:{built_demo.platform_ref}"
    out = run(venvship_main.main, ["publish", src, f"{host}/roundtrip", *opts])
    assert f"published {host}/roundtrip/{built_demo.platform_ref}" in out
    out = run(venvship_main.main, ["index", f"{host}/roundtrip/demo:1.0", *opts])
    # The index merged in the registry is byte for byte the one the build wrote locally.
    assert out.strip() == f"{host}/roundtrip/demo:1.0: index {layout.resolve('demo:1.0').digest}"

    argv = install_argv(f"{host}/roundtrip/demo:1.0", tmp_path, "--json", *opts)
    first = json.loads(run(venv_pull_main.main, argv))
    assert first["changed"] is True
    assert first["digest"] == layout.resolve(built_demo.platform_ref).digest
    python = tmp_path / "venvs" / "demo" / "bin" / "python"
    check = "import alpha, beta._speed as s; print(s.add(2, 3))"
    assert subprocess.run([python, "-c", check], check=True, capture_output=True, text=True).stdout == "5\n"
    again = json.loads(run(venv_pull_main.main, argv))
    assert (again["changed"], again["digest"]) == (False, first["digest"])


def test_no_op_install_checks_the_tag_with_one_request(
    open_registry: RegistryServer,
    built_demo: BuiltDemo,
    tmp_path: Path,
    run: Callable[[Main, list[str]], str],
) -> None:
    dest = RegistryRef(registry=open_registry.host, repository="noop")
    publish_layout(built_demo.layout, ["demo:1.0"], dest, client_for(open_registry))
    argv = install_argv(f"{open_registry.host}/noop/demo:1.0", tmp_path, "--json", "--insecure")
    assert json.loads(run(venv_pull_main.main, argv))["changed"] is True

    start = log_mark(open_registry)
    assert json.loads(run(venv_pull_main.main, argv))["changed"] is False
    assert requests_between(open_registry, start) == [("GET", "/v2/noop/demo/manifests/1.0")]


def test_identical_republish_uploads_nothing(
    open_registry: RegistryServer, built_demo: BuiltDemo, run: Callable[[Main, list[str]], str]
) -> None:
    argv = ["publish", f"oci:{built_demo.layout.root}", f"{open_registry.host}/republish", "--insecure"]
    manifest = built_demo.manifest()
    start = log_mark(open_registry)
    run(venvship_main.main, argv)
    uploads = [p for m, p in requests_between(open_registry, start) if m == "POST" and "/blobs/uploads/" in p]
    # The config and each wheel, once; then the referrers' blobs: the empty config they share,
    # the SBOM and the provenance envelope (#14).
    assert len(uploads) == 1 + len(manifest.layers) + 3

    start = log_mark(open_registry)
    out = run(venvship_main.main, argv)
    seen = requests_between(open_registry, start)
    assert seen, "the second publish asked the registry nothing"
    writes = [(m, p) for m, p in seen if m not in ("GET", "HEAD")]
    assert [p for _, p in writes if "/blobs/" in p] == []  # no blob uploaded, none mounted
    # No tag written either (index children are put again by digest: idempotent, tiny).
    assert [p for _, p in writes if "/manifests/sha256:" not in p] == []
    assert out.startswith(f"{open_registry.host}/republish: unchanged")


def test_build_reuse_from_a_registry_rebuilds_only_unsigned_source_wheels(
    tls_registry: RegistryServer,
    built_demo: BuiltDemo,
    tmp_path: Path,
    shared_builders: Path,
    run: Callable[[Main, list[str]], str],
) -> None:
    dest = RegistryRef(registry=tls_registry.host, repository="reuse")
    publish_layout(built_demo.layout, ["demo:1.0"], dest, client_for(tls_registry))
    assert tls_registry.tls_ca is not None
    fresh = tmp_path / "fresh-cache"
    fresh.mkdir()
    (fresh / "builders").symlink_to(shared_builders)
    argv = [
        "build",
        str(built_demo.recipe),
        "--output",
        f"oci:{tmp_path / 'oci'}",
        "--reuse-from",
        f"{tls_registry.host}/reuse/demo:1.0",
        "--ca-file",
        str(tls_registry.tls_ca),
        "--cache-dir",
        str(fresh),
        "--json",
    ]
    [result] = json.loads(run(venvship_main.main, argv))["recipes"]
    config = built_demo.config()
    assert result["status"] == "built"
    assert (result["downloaded"], result["cached"]) == ([], [])
    # Unsigned (no --reuse-policy): only the wheels the index's sha256 vouches for are reused.
    assert sorted(result["reused"]) == sorted(w.filename for w in config.tools)
    assert sorted(result["built"]) == sorted(w.filename for w in config.lock)
