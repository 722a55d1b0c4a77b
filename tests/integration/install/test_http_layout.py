"""venv-pull install from an OCI image layout served by Debian's nginx (``oci+http(s)://…``): tags
from ``index.json``, blobs by digest; a hostile server (tampered blob, huge index.json, a redirect
to another host or to plain HTTP, a login it asks for) is refused in one line with the host as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.needs import require_python
from tests.nginx import Nginx, start_nginx
from tests.servers import FileServer
from tests.signing import make_key, write_policy
from venvship.artifact.documents import Index, Manifest
from venvship.install.zipapp import build_zipapp
from venvship.oci.httplayout import MAX_SERVED_INDEX
from venvship.oci.layout import Layout

from ..registry._pki import make_tls_certs
from .conftest import SRC, Artifacts, Pull, Wheels, tree_snapshot


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Nginx]:
    """nginx serving ``tmp_path/www``; the tests put their layout at ``www/venvs``."""
    (tmp_path / "www").mkdir()
    server = start_nginx(tmp_path / "nginx", root=tmp_path / "www")
    yield server
    server.stop()


def _serve(artifacts: Artifacts, ref: str, web: Nginx) -> str:
    """Put the layout of ``ref`` under the web root; return its ``oci+http://`` reference."""
    shutil.copytree(artifacts.root, web_root(web) / "venvs")
    name_tag = ref.rsplit(":", 2)
    return f"oci+{web.url}/venvs:{name_tag[1]}:{name_tag[2]}"


def web_root(web: Nginx) -> Path:
    return web.prefix.parent / "www"


def _refused(
    pull: Pull, ref: str, *args: str, env: dict[str, str] | None = None, pulled: bool = False
) -> str:
    """Run a failing install; return its one error line, the host unchanged (``pulled``: it got as
    far as pulling: the digest-keyed cache may keep the blobs that checked out, and the
    destination's state folder is made, but no venv goes live)."""
    kept = [pull.facts] if pulled else [pull.tmp / "venvs", pull.facts, pull.cache]
    before = tree_snapshot(*kept)
    proc = pull("install", ref, *args, ok=False, env=env)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_snapshot(*kept) == before
    assert not pull.dest.exists()
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    return line


def _venvship(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvship.cli.venvship_main", *args],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_rerun_list_and_copy_from_a_web_server(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx, tmp_path: Path
) -> None:
    ref = _serve(artifacts, artifacts.write([wheels.demo2, wheels.helper]), web)
    first = pull.install(ref, "--insecure")
    assert first["changed"] is True and first["packages"] == 2
    assert pull.python("import demo, helper; print(demo.VERSION)") == "2.0"
    # Tags from index.json, everything else by digest: what any HTTP cache can serve.
    paths = {path for method, path, status in web.answers() if status == 200}
    assert "/venvs/index.json" in paths
    assert {p.rpartition("/")[0] for p in paths - {"/venvs/index.json", "/"}} == {"/venvs/blobs/sha256"}

    served = len(web.answers())
    again = pull.install(ref, "--insecure")
    assert again["changed"] is False and again["digest"] == first["digest"]
    # The rerun reads index.json and the two documents above the blobs, nothing more.
    assert len(web.answers()) - served <= 3

    inspected = _venvship("inspect", ref, "--insecure", "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert (
        json.loads(inspected.stdout)["digest"] == Layout(web_root(web) / "venvs").resolve("demo:1.0").digest
    )

    listed = _venvship("list", f"oci+{web.url}/venvs", "--insecure")
    assert listed.returncode == 0, listed.stderr
    assert f"oci+{web.url}/venvs:demo:1.0" in listed.stdout

    # publish reads it as a source: the artifact and its blobs copied into a layout directory.
    copied = _venvship("publish", ref, f"oci:{tmp_path / 'copy'}", "--insecure")
    assert copied.returncode == 0, copied.stderr
    served_index = Layout(web_root(web) / "venvs").resolve("demo:1.0")
    assert Layout(tmp_path / "copy").resolve("demo:1.0") == served_index


def test_hosts_behind_a_caching_proxy_cost_the_origin_one_copy(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx, tmp_path: Path
) -> None:
    """An HTTP cache in front of the server needs no venvship setting: the hosts name its URL."""
    ref = artifacts.write([wheels.demo2, wheels.helper])
    _serve(artifacts, ref, web)
    cache = start_nginx(
        tmp_path / "cache",
        root=tmp_path / "cache",
        http_extra=f"proxy_cache_path {tmp_path / 'cache' / 'store'} keys_zone=layout:1m use_temp_path=off;",
        locations=f"location / {{ proxy_pass {web.url}; proxy_cache layout; proxy_cache_lock on; "
        "proxy_cache_valid 200 1h; }",
    )
    try:
        name_tag = ref.rsplit(":", 2)
        via_cache = f"oci+{cache.url}/venvs:{name_tag[1]}:{name_tag[2]}"
        for host in ("a", "b"):
            argv = pull.argv("install", via_cache, "--insecure", "--json", defaults=False)
            argv += ["--dest", str(tmp_path / host / "venv"), "--cache", str(tmp_path / host / "cache")]
            argv += ["--facts-dir", str(tmp_path / host / "facts"), "--no-distro-packages"]
            proc = subprocess.run(argv, env=pull.env(), capture_output=True, text=True, timeout=180)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["changed"] is True
    finally:
        cache.stop()
    blobs = [path for method, path, status in web.answers() if "/blobs/" in path]
    assert blobs and len(blobs) == len(set(blobs))  # the second host's blobs all came from the cache


def test_plain_http_needs_insecure_and_a_missing_tag_is_one_line(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx
) -> None:
    ref = _serve(artifacts, artifacts.write([wheels.demo1]), web)
    assert "plain HTTP; pass --insecure" in _refused(pull, ref)
    line = _refused(pull, ref.replace(":1.0", ":9.9"), "--insecure")
    assert f"{web.url}/venvs: no ref 'demo:9.9' (refs: demo:1.0" in line
    line = _refused(pull, f"oci+{web.url}/nowhere:demo:1.0", "--insecure")
    assert "not an OCI image layout (no index.json)" in line
    # A cache in front of a web server is named by its URL: --mirror is for registries.
    line = _refused(pull, ref, "--insecure", "--mirror", "cache.example:5000")
    assert "is a layout on a web server; to read it through a cache, name the cache's URL" in line


def test_a_blob_that_does_not_match_its_digest_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx
) -> None:
    ref = _serve(artifacts, artifacts.write([wheels.demo1]), web)
    layout = Layout(web_root(web) / "venvs")
    index = Index.from_bytes(layout.read_blob(layout.resolve("demo:1.0").digest))
    manifest = Manifest.from_bytes(layout.read_blob(index.manifests[0].digest))
    victim = manifest.layers[-1]
    path = layout.blob_path(victim.digest)
    path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))  # same size, other content
    line = _refused(pull, ref, "--insecure", pulled=True)
    assert f"{victim.digest}: digest mismatch" in line
    assert not list(pull.cache.glob(f"blobs/sha256/{victim.digest[7:]}"))

    # A manifest is checked as well, before any blob it names is pulled.
    shutil.rmtree(pull.cache)
    top = layout.blob_path(index.manifests[0].digest)
    raw = top.read_bytes()
    top.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    line = _refused(pull, ref, "--insecure", pulled=True)
    assert f"blob {index.manifests[0].digest} is corrupt" in line
    assert not list(pull.cache.glob("blobs/sha256/*"))


def test_an_index_json_over_the_limit_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx
) -> None:
    ref = _serve(artifacts, artifacts.write([wheels.demo1]), web)
    index = web_root(web) / "venvs" / "index.json"
    with index.open("r+b") as fh:  # a valid start, then more than the limit of spaces
        fh.seek(0, 2)
        fh.write(b" " * (MAX_SERVED_INDEX + 1))
    line = _refused(pull, ref, "--insecure")
    assert f"{web.url}/venvs/index.json: larger than {MAX_SERVED_INDEX} bytes" in line


def test_a_redirect_to_another_host_is_followed_and_still_checked(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    index = Index.from_bytes(layout.read_blob(layout.resolve("demo:1.0").digest))
    manifest = Manifest.from_bytes(layout.read_blob(index.manifests[0].digest))
    victim = manifest.layers[-1]
    # The other host serves the layout, but one blob tampered with: the digest still decides.
    files = {
        f"/elsewhere/{p.relative_to(artifacts.root)}": p.read_bytes()
        for p in artifacts.root.rglob("*")
        if p.is_file()
    }
    bad = f"/elsewhere/blobs/sha256/{victim.digest[7:]}"
    files[bad] = bytes(b ^ 0xFF for b in files[bad])
    other = FileServer(files)
    try:
        (tmp_path / "www").mkdir()
        web = start_nginx(
            tmp_path / "nginx",
            root=tmp_path / "www",
            locations=f"location /venvs/ {{ rewrite ^/venvs/(.*)$ {other.url}/elsewhere/$1 redirect; }}",
        )
        try:
            name_tag = ref.rsplit(":", 2)
            line = _refused(
                pull, f"oci+{web.url}/venvs:{name_tag[1]}:{name_tag[2]}", "--insecure", pulled=True
            )
        finally:
            web.stop()
        assert f"{victim.digest}: digest mismatch" in line
        assert "/elsewhere/index.json" in other.requests and bad in other.requests
        assert set(other.auth) == {None}
        assert not list(pull.cache.glob(f"blobs/sha256/{victim.digest[7:]}"))
    finally:
        other.close()


def test_https_never_follows_a_redirect_to_plain_http(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    ref = artifacts.write([wheels.demo1])
    ca, cert, key = make_tls_certs(tmp_path / "tls")
    other = FileServer({})
    (tmp_path / "www").mkdir()
    shutil.copytree(artifacts.root, tmp_path / "www" / "venvs")
    tls = f"ssl_certificate {cert}; ssl_certificate_key {key};"
    web = start_nginx(
        tmp_path / "nginx",
        root=tmp_path / "www",
        locations=f"{tls} location = /venvs/index.json {{ return 302 {other.url}/index.json; }}",
        tls=True,
    )
    try:
        name_tag = ref.rsplit(":", 2)
        https_ref = f"oci+{web.url}/venvs:{name_tag[1]}:{name_tag[2]}"
        line = _refused(pull, https_ref, "--ca-file", str(ca), "--insecure")
        assert "refusing a downgrade to plain HTTP" in line
        assert other.requests == []
    finally:
        web.stop()
        other.close()


def test_a_login_goes_only_where_it_is_given(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    """A web server that asks for a login gets none from the host's registry logins (docker
    login for that host:port), only the one given on the command line."""
    ref = artifacts.write([wheels.demo1])
    (tmp_path / "www").mkdir()
    shutil.copytree(artifacts.root, tmp_path / "www" / "venvs")
    (tmp_path / "htpasswd").write_text("fleet:{PLAIN}s3cret\n")
    login = f'auth_basic "repo"; auth_basic_user_file {tmp_path / "htpasswd"};'
    web = start_nginx(tmp_path / "nginx", root=tmp_path / "www", locations=login)
    try:
        name_tag = ref.rsplit(":", 2)
        web_ref = f"oci+{web.url}/venvs:{name_tag[1]}:{name_tag[2]}"
        auth = tmp_path / "auth.json"
        host = web.url.split("://")[1]
        auth.write_text(json.dumps({"auths": {host: {"auth": "ZmxlZXQ6czNjcmV0"}}}))  # fleet:s3cret
        auth.chmod(0o600)
        env = {"REGISTRY_AUTH_FILE": str(auth)}
        assert "the web server asks for a login; " in _refused(pull, web_ref, "--insecure", env=env)
        given = subprocess.run(
            pull.argv("install", web_ref, "--insecure", "--json", "--username", "fleet", "--password-stdin"),
            input="s3cret\n",
            env=pull.env(env),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert given.returncode == 0, given.stderr
        assert json.loads(given.stdout)["changed"] is True
        wrong = subprocess.run(
            pull.argv(
                "install", web_ref, "--insecure", "--rebuild", "--username", "fleet", "--password-stdin"
            ),
            input="wrong\n",
            env=pull.env(env),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert wrong.returncode == 1
        assert "the web server refused the login given (401" in wrong.stderr
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "venvship.cli.venvship_main",
                "list",
                f"oci+{web.url}/venvs",
                "--insecure",
                "--username",
                "fleet",
                "--password-stdin",
            ],
            input="s3cret\n",
            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "REGISTRY_AUTH_FILE": str(auth)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        assert f"oci+{web.url}/venvs:demo:1.0" in listed.stdout
    finally:
        web.stop()


def test_a_signature_policy_holds_over_http(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx, tmp_path: Path
) -> None:
    """Signatures travel as the on-disk layout keeps them (NAME:sha256-<hex> in index.json)."""
    key = make_key(tmp_path / "keys", "release")
    layout_ref = artifacts.write([wheels.demo1])
    scope = f"oci+{web.url}/venvs"
    policy = write_policy(pull.tmp / "policy.toml", {scope: [key.public]})
    ref = _serve(artifacts, layout_ref, web)
    assert "found no signature" in _refused(pull, ref, "--insecure", "--policy", str(policy))

    signed = _venvship("sign", layout_ref, "--key", str(key.private))
    assert signed.returncode == 0, signed.stderr
    shutil.rmtree(web_root(web) / "venvs")
    _serve(artifacts, layout_ref, web)
    assert pull.install(ref, "--insecure", "--policy", str(policy))["changed"] is True


def test_the_zipapp_on_python39_installs_over_https(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    """A bare host: the distro's oldest supported Python and the stdlib-only zipapp, over TLS."""
    py39 = require_python("3.9")
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    ref = artifacts.write([wheels.demo2], python=str(py39), install_tool="pip")
    ca, cert, key = make_tls_certs(tmp_path / "tls")
    (tmp_path / "www").mkdir()
    shutil.copytree(artifacts.root, tmp_path / "www" / "venvs")
    tls = f"ssl_certificate {cert}; ssl_certificate_key {key};"
    web = start_nginx(tmp_path / "nginx", root=tmp_path / "www", locations=tls, tls=True)
    try:
        name_tag = ref.rsplit(":", 2)
        https_ref = f"oci+{web.url}/venvs:{name_tag[1]}:{name_tag[2]}"
        env = pull.env()
        env.pop("PYTHONPATH")  # only the zipapp's own copy of venvship
        # pyenv's 3.9 sits where nobody cannot run it: the health check keeps root here.
        argv = pull.argv("install", https_ref, "--json", "--check-user", "root", "--ca-file", str(ca))[3:]
        proc = subprocess.run([py39, pyz, *argv], env=env, capture_output=True, text=True, timeout=180)
    finally:
        web.stop()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True
    assert pull.python("import sys, demo; print(sys.version_info[:2], demo.VERSION)") == "(3, 9) 2.0"
