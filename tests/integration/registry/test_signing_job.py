"""A signing job signs only what was made or verified with its key (#20).

Before #20, ``index --sign-key`` merged whatever ``VERSION-*`` tags the registry held and signed
each platform manifest: a pusher without the key who moved a platform tag between the build and
the index job got their manifest signed.
"""

from __future__ import annotations

import http.client
import http.server
import io
import json
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest

from tests.integration.conftest import RecipeWriter
from tests.integration.install.conftest import make_config, make_wheel, wheel_of
from tests.signing import make_key
from venvship.artifact.sigformat import INTOTO_TYPE, dsse_envelope, dsse_statement, parse_referrer
from venvship.builder.evidence import attach_provenance
from venvship.builder.package import write_to_layout
from venvship.cli import venvship_main
from venvship.oci.attach import LayoutStore
from venvship.oci.layout import Layout

from ._pki import PASSWORD
from ._support import RegistryServer, cli_registry_args, client_for
from .test_signatures import _artifact

pytestmark = pytest.mark.registry

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    def call(argv: list[str], server: RegistryServer) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        code = venvship_main.main([*argv, *cli_registry_args(server)])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_index_signs_only_platform_manifests_a_trusted_key_signed(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    host = open_registry.host
    key = make_key(tmp_path / "keys", "release")
    genuine = _artifact(tmp_path / "a", tool_wheels)
    code, _, err = cli(
        ["publish", f"oci:{genuine.root}", f"{host}/job", "--sign-key", str(key.private)], open_registry
    )
    assert code == 0, err
    code, _, err = cli(["index", f"{host}/job/demo:1.0", "--sign-key", str(key.private)], open_registry)
    assert code == 0, err
    client = client_for(open_registry)
    signed_index = client.check_tag("job/demo", "1.0")

    # A pusher without the key moves the platform tag to their own, unsigned manifest.
    evil = _artifact(tmp_path / "b", tool_wheels, body="EVIL = True")
    [platform_ref] = [r for r in evil.refs() if r.startswith("demo:1.0-")]
    code, _, err = cli(["publish", f"oci:{evil.root}:{platform_ref}", f"{host}/job"], open_registry)
    assert code == 0, err
    evil_digest = client.check_tag("job/demo", platform_ref.split(":", 1)[1])
    assert evil_digest is not None

    code, _, err = cli(["index", f"{host}/job/demo:1.0", "--sign-key", str(key.private)], open_registry)
    assert code == 1
    [line] = err.strip().splitlines()
    assert evil_digest in line and "no signature" in line
    assert client.check_tag("job/demo", "1.0") == signed_index  # the tag did not move
    assert not client.referrers("job/demo", evil_digest)  # and nothing signed it

    # --immutable-tags: the index tag is not moved to other content, signed or not.
    code, _, err = cli(["index", f"{host}/job/demo:1.0", "--immutable-tags"], open_registry)
    assert code == 1
    [line] = err.strip().splitlines()
    assert "--immutable-tags refuses to move it" in line
    assert client.check_tag("job/demo", "1.0") == signed_index


def test_sign_and_fetch_refuse_registry_content_no_trusted_key_signed(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    host = open_registry.host
    key = make_key(tmp_path / "keys", "new")
    old = make_key(tmp_path / "keys", "old")
    pushed = _artifact(tmp_path / "a", tool_wheels)  # pushed by someone without any key
    assert cli(["publish", f"oci:{pushed.root}", f"{host}/vouch"], open_registry)[0] == 0
    client = client_for(open_registry)
    index = client.check_tag("vouch/demo", "1.0")
    assert index is not None

    code, _, err = cli(["sign", f"{host}/vouch/demo:1.0", "--key", str(key.private)], open_registry)
    assert code == 1
    [line] = err.strip().splitlines()
    assert index in line and "no signature" in line
    # It names the key passed, not a temporary copy of its public half, and the ways out.
    assert "the signing key (sha256:" in line and "signing-key.pub" not in line
    assert "--vouch-unverified" in line
    code, _, err = cli(
        ["publish", f"{host}/vouch/demo:1.0", f"oci:{tmp_path / 'copy'}", "--sign-key", str(key.private)],
        open_registry,
    )
    assert code == 1 and index in err
    assert not client.referrers("vouch/demo", index)  # nothing signed

    # A key rollover: the old key signed it, the new key trusts the old one and signs too.
    code, _, err = cli(
        ["sign", f"{host}/vouch/demo:1.0", "--key", str(old.private), "--vouch-unverified"], open_registry
    )
    assert code == 0, err
    code, _, err = cli(
        ["sign", f"{host}/vouch/demo:1.0", "--key", str(key.private), "--trust-key", str(old.public)],
        open_registry,
    )
    assert code == 0, err
    assert len(client.referrers("vouch/demo", index)) == 2


def test_provenance_someone_else_attached_is_not_signed(tool_wheels: Path, tmp_path: Path) -> None:
    layout = _artifact(tmp_path / "a", tool_wheels)
    [platform_ref] = [r for r in layout.refs() if r.startswith("demo:1.0-")]
    store = LayoutStore(layout, "demo")
    subject = store.get_manifest(platform_ref.split(":", 1)[1])[0]
    # A statement about this very manifest, attached by whoever can write the layout.
    forged = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": platform_ref, "digest": {"sha256": subject.digest.split(":")[1]}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"externalParameters": {"source": "attacker"}}},
        }
    ).encode()
    attach_provenance(store, subject, dsse_envelope(forged, []))
    key = make_key(tmp_path / "keys", "release")
    assert venvship_main.main(["sign", f"oci:{layout.root}:demo:1.0", "--key", str(key.private)]) == 0
    statements = [e for e in store.referrers(subject.digest) if e.artifact_type == INTOTO_TYPE]
    assert statements
    for entry in statements:
        if entry.artifact_type == INTOTO_TYPE:
            referrer = parse_referrer(store.get_manifest(entry.digest)[1], where="provenance")
            _, sigs = dsse_statement(store.blob(referrer.layers[0]), where="provenance")
            assert sigs == []  # the signing key vouches only for what its build made


def test_index_signs_what_the_pipelines_build_jobs_recorded(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    """The CI templates' flow: build jobs push unsigned and keep `build --json` as a job artifact;
    the signing job, which builds nothing, signs only the manifests those outputs name."""
    host = open_registry.host
    key = make_key(tmp_path / "keys", "release")
    genuine = _artifact(tmp_path / "a", tool_wheels)
    assert cli(["publish", f"oci:{genuine.root}", f"{host}/ci"], open_registry)[0] == 0
    client = client_for(open_registry)
    [platform_ref] = [r for r in genuine.refs() if r.startswith("demo:1.0-")]
    platform_tag = platform_ref.split(":", 1)[1]
    made = client.check_tag("ci/demo", platform_tag)
    assert made is not None
    # What `venvship build --json` prints, written here from the pushed digest (the build step
    # itself is covered by the build tests; this test is about what the signing job accepts).
    built = tmp_path / "build-amd64.json"
    built.write_text(json.dumps({"recipes": [{"name": "demo", "digest": made, "status": "built"}]}))

    code, _, err = cli(["index", f"{host}/ci/demo:1.0", "--sign-key", str(key.private)], open_registry)
    assert code == 1 and made in err  # unsigned and not recorded: refused
    code, _, err = cli(
        ["index", f"{host}/ci/demo:1.0", "--sign-key", str(key.private), "--built", str(built)], open_registry
    )
    assert code == 0, err
    index = client.check_tag("ci/demo", "1.0")
    assert index is not None
    assert client.referrers("ci/demo", index) and client.referrers("ci/demo", made)  # both signed

    # A pusher without the key moves the platform tag: the recorded digest no longer matches.
    evil = _artifact(tmp_path / "b", tool_wheels, body="EVIL = True")
    assert cli(["publish", f"oci:{evil.root}:{platform_ref}", f"{host}/ci"], open_registry)[0] == 0
    evil_digest = client.check_tag("ci/demo", platform_tag)
    assert evil_digest not in (None, made)
    code, _, err = cli(
        ["index", f"{host}/ci/demo:1.0", "--sign-key", str(key.private), "--built", str(built)], open_registry
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert evil_digest in line
    assert client.check_tag("ci/demo", "1.0") == index
    assert not client.referrers("ci/demo", evil_digest)

    # A file that is not a build output is one error line naming it.
    built.write_text("{}")
    code, _, err = cli(
        ["index", f"{host}/ci/demo:1.0", "--sign-key", str(key.private), "--built", str(built)], open_registry
    )
    assert code != 0 and len(err.strip().splitlines()) == 1 and str(built) in err


def test_a_digest_recorded_for_one_recipe_is_not_signed_in_another_recipes_index(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    """The pipeline built ``demo`` and ``other``, both 1.0. A pusher without the key puts other's
    manifest under demo's platform tag: the signing job must not sign it as demo's (a target that
    installs demo:1.0 would get other's venv, under demo's name and signature)."""
    host = open_registry.host
    key = make_key(tmp_path / "keys", "release")
    genuine = _artifact(tmp_path / "a", tool_wheels)
    assert cli(["publish", f"oci:{genuine.root}", f"{host}/ci"], open_registry)[0] == 0
    client = client_for(open_registry)
    [platform_ref] = [r for r in genuine.refs() if r.startswith("demo:1.0-")]
    platform_tag = platform_ref.split(":", 1)[1]
    demo_digest = client.check_tag("ci/demo", platform_tag)
    index_before = client.check_tag("ci/demo", "1.0")
    # other's build: its layout names it demo's way, which is what the pusher publishes.
    other = _artifact(tmp_path / "b", tool_wheels, body="OTHER = True")
    other_digest = other.resolve(platform_ref).digest
    assert other_digest != demo_digest
    built = tmp_path / "build-amd64.json"
    built.write_text(
        json.dumps(
            {
                "recipes": [
                    {"name": "demo", "ref": platform_ref, "digest": demo_digest, "status": "built"},
                    {
                        "name": "other",
                        "ref": f"other:{platform_tag}",
                        "digest": other_digest,
                        "status": "built",
                    },
                ]
            }
        )
    )
    assert cli(["publish", f"oci:{other.root}:{platform_ref}", f"{host}/ci"], open_registry)[0] == 0
    assert client.check_tag("ci/demo", platform_tag) == other_digest

    code, _, err = cli(
        ["index", f"{host}/ci/demo:1.0", "--sign-key", str(key.private), "--built", str(built)], open_registry
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert other_digest in line
    assert client.check_tag("ci/demo", "1.0") == index_before
    assert not client.referrers("ci/demo", other_digest)


def test_build_sign_key_to_a_registry_signs_its_manifests_and_index_not_staging_leftovers(
    open_registry: RegistryServer,
    write_recipe: RecipeWriter,
    cache: Path,
    tool_wheels: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The staging layout in the cache keeps tags of earlier runs: a build signs and pushes its own
    platform manifests and the registry's merged index, never a leftover of the staging layout."""
    host = open_registry.host
    key = make_key(tmp_path / "keys", "release")
    # demo 1.0 for another platform, left in the staging layout by an earlier, unsigned run.
    wheel = make_wheel(tmp_path / "wheels", "alpha", "1.0", body="OLD = True")
    uv = next(tool_wheels.glob("uv-*.whl"))
    config = make_config(lock=[wheel_of(wheel)], tools=[wheel_of(uv)], architecture="arm64", abi="cp399")
    staging = Layout.create(cache / "staging")
    stale = write_to_layout(staging, config, {wheel_of(wheel).digest: wheel, wheel_of(uv).digest: uv}).digest
    argv = [
        "build",
        str(write_recipe()),
        "--output",
        f"{host}/built",
        "--insecure",
        "--cache-dir",
        str(cache),
    ]
    code = venvship_main.main([*argv, "--no-distro-packages", "--sign-key", str(key.private), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [built] = json.loads(out)["recipes"]
    client = client_for(open_registry)
    index = client.check_tag("built/demo", "1.0")
    assert index is not None
    assert client.referrers("built/demo", built["digest"]) and client.referrers("built/demo", index)
    assert not LayoutStore(staging, "demo").referrers(stale)  # the leftover was not signed


class _MovingTag:
    """An HTTP proxy on 127.0.0.1 in front of a real registry that, once the referrers (the
    signatures) of anything were asked for, answers the tag ``moving/demo:1.0`` with ``to``:
    a registry account moving a tag right after the signing job verified it."""

    def __init__(self, upstream: str, to: str) -> None:
        self.moved = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                path = self.path
                if "/referrers/" in path or "sha256-" in path:
                    outer.moved = True
                if outer.moved and path == "/v2/moving/demo/manifests/1.0":
                    path = f"/v2/moving/demo/manifests/{to}"
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(upstream, timeout=30)
                conn.request(self.command, path, body=body or None, headers=dict(self.headers))
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_sign_signs_what_it_verified_not_what_the_tag_names_when_asked_again(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    host = open_registry.host
    key, old = make_key(tmp_path / "keys", "new"), make_key(tmp_path / "keys", "old")
    evil = _artifact(tmp_path / "b", tool_wheels, body="EVIL = True")  # nobody signs it
    assert cli(["publish", f"oci:{evil.root}", f"{host}/moving"], open_registry)[0] == 0
    client = client_for(open_registry)
    evil_digest = client.check_tag("moving/demo", "1.0")
    genuine = _artifact(tmp_path / "a", tool_wheels)
    assert cli(["publish", f"oci:{genuine.root}", f"{host}/moving"], open_registry)[0] == 0
    signed = client.check_tag("moving/demo", "1.0")
    code, _, err = cli(
        ["sign", f"{host}/moving/demo:1.0", "--key", str(old.private), "--vouch-unverified"], open_registry
    )
    assert code == 0 and evil_digest and signed != evil_digest, err

    proxy = _MovingTag(host, str(evil_digest))
    try:
        argv = ["sign", f"{proxy.host}/moving/demo:1.0", "--key", str(key.private), "--insecure"]
        code = venvship_main.main([*argv, "--trust-key", str(old.public)])
    finally:
        proxy.close()
    assert proxy.moved  # the tag did move under the signing job
    assert not client.referrers("moving/demo", str(evil_digest)), "the key signed what no trusted key signed"
    assert code == 0
    assert len(client.referrers("moving/demo", str(signed))) == 2
