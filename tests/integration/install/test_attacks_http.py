"""venv-pull against a hostile web server (``oci+http(s)://…``), as an intruder would attack it:
the server (or a cache in front of it) writes lines of its own into root's output, sends a login
to a port of its choosing, or a reference's spelling takes a layout out of its policy scope.

:class:`Hostile` is a stand-in for a hostile web server: a tiny ``http.server`` on 127.0.0.1
whose answers the test chooses. Each test fails on the venv-pull before its fix.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest

from tests.nginx import Nginx, start_nginx
from tests.signing import make_key, write_policy
from venvship.artifact.documents import (
    ANN_PYTHON,
    INDEX_TYPE,
    MANIFEST_TYPE,
    REF_NAME,
    Descriptor,
    sha256_digest,
)
from venvship.artifact.sigformat import EMPTY_JSON, referrer_manifest
from venvship.oci.attach import LayoutStore
from venvship.oci.httplayout import MAX_SERVED_INDEX
from venvship.oci.layout import Layout
from venvship.oci.referrers import list_bytes, referrer_entry, referrers_tag

from .conftest import SRC, Artifacts, Pull, Wheels, tree_snapshot

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


class Hostile:
    """A hostile web server on 127.0.0.1: serves ``files`` (URL path → bytes) and answers each path
    of ``answers`` with what its function writes. ``requests`` lists (path, Authorization header)."""

    def __init__(self, files: Mapping[str, bytes], answers: Mapping[str, Answer] | None = None) -> None:
        self.files = dict(files)
        self.answers = dict(answers or {})
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Authorization")))
                answer = outer.answers.get(self.path)
                if answer is not None:
                    answer(self)
                    return
                body = outer.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _layout_files(root: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _answer(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Answer:
    def write(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return write


@pytest.fixture
def hostile() -> Iterator[Callable[..., Hostile]]:
    servers: list[Hostile] = []

    def start(files: Mapping[str, bytes], answers: Mapping[str, Answer] | None = None) -> Hostile:
        servers.append(Hostile(files, answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _refused(pull: Pull, ref: str, *args: str, stdin: str | None = None) -> str:
    """Run a failing install; return its whole stderr, the host as it was."""
    kept = [pull.tmp / "venvs", pull.facts, pull.cache]
    before = tree_snapshot(*kept)
    proc = subprocess.run(
        pull.argv("install", ref, *args),
        input=stdin,
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_snapshot(*kept) == before
    return proc.stderr


FORGED = "venv-pull: demo 1.0 installed, changed: false"


def test_a_server_writes_no_line_or_terminal_control_of_its_own_into_the_output(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, hostile: Callable[..., Hostile]
) -> None:
    """What root's terminal or the Ansible log shows is one line per error, in venv-pull's words:
    ref names, a reason phrase and an error body are the server's and may hold anything."""
    artifacts.write([wheels.demo1])
    files = _layout_files(artifacts.root, "/venvs")
    index = json.loads(files["/venvs/index.json"])
    real = index["manifests"][0]
    # Ref names the server made up: a line break, a terminal escape, and far more than one line holds.
    index["manifests"] += [
        {**real, "annotations": {"org.opencontainers.image.ref.name": f"demo:0\n{FORGED}\x1b[2K"}},
        *({**real, "annotations": {"org.opencontainers.image.ref.name": f"demo:x{i}"}} for i in range(2000)),
    ]
    files["/venvs/index.json"] = json.dumps(index).encode()
    server = hostile(files)
    err = _refused(pull, f"oci+{server.url}/venvs:demo:9.9", "--insecure")
    [line] = err.splitlines()
    assert "no ref 'demo:9.9'" in line and "\x1b" not in line and len(line) < 2000, line[:300]

    # A blob's error answer: a distribution-style JSON message, and a reason phrase with an escape.
    blob = f"/venvs/blobs/sha256/{real['digest'][7:]}"
    message = json.dumps({"errors": [{"code": "X", "message": f"gone\n{FORGED}\n\x1b]0;pwned\x07"}]}).encode()
    server = hostile(files, {blob: _answer(404, message)})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:1.0", "--insecure")
    [line] = err.splitlines()
    assert "not found (404)" in line and FORGED not in err.replace(line, "") and "\x1b" not in line, err

    def reason(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response_only(403, f"Forbidden\r{FORGED}\x1b[2K")
        h.send_header("Content-Length", "0")
        h.end_headers()

    server = hostile(files, {blob: reason})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:1.0", "--insecure")
    [line] = err.splitlines()
    assert "access denied (403)" in line and "\r" not in line and "\x1b" not in line, err

    def status_line(h: http.server.BaseHTTPRequestHandler) -> None:
        h.wfile.write(f"SPAM\x1b[2J\r{FORGED}\r\n\r\n".encode())  # not HTTP at all

    server = hostile(files, {blob: status_line})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:1.0", "--insecure")
    [line] = [ln for ln in err.splitlines() if ln.startswith("venv-pull: error:")]
    assert "gave up after 5 attempts" in line and "\x1b" not in err and "\r" not in err, err

    # venvship list prints only ref names a reference can name.
    proc = subprocess.run(
        [
            *pull.argv("install")[:2],
            "venvship.cli.venvship_main",
            "list",
            f"oci+{server.url}/venvs",
            "--insecure",
        ],
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and FORGED not in proc.stdout
    assert f"oci+{server.url}/venvs:demo:1.0 " in proc.stdout


def test_a_login_never_goes_to_a_token_realm_the_web_server_names(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, hostile: Callable[..., Hostile]
) -> None:
    """A web server's login goes to its own scheme, host and port only (the how-to's promise): a
    Bearer challenge naming a "token server" on another port of the same host gets none of it."""
    artifacts.write([wheels.demo1])
    realm = hostile({})  # another port of the same host: any local user may listen there
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="repo"'}
    server = hostile(
        _layout_files(artifacts.root, "/venvs"), {"/venvs/index.json": _answer(401, b"", challenge)}
    )
    err = _refused(
        pull,
        f"oci+{server.url}/venvs:demo:1.0",
        "--insecure",
        "--username",
        "fleet",
        "--password-stdin",
        stdin="s3cret\n",
    )
    assert realm.requests == [], realm.requests
    assert (
        "refused the login given (401; it goes as HTTP Basic only)" in err and len(err.splitlines()) == 1
    ), err


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Nginx]:
    """Debian's nginx serving ``tmp_path/www``: it resolves ``..``, ``.``, ``//`` and %-escapes."""
    (tmp_path / "www").mkdir()
    server = start_nginx(tmp_path / "nginx", root=tmp_path / "www")
    yield server
    server.stop()


def test_no_spelling_of_a_reference_takes_a_layout_out_of_its_policy_scope(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, web: Nginx, tmp_path: Path
) -> None:
    """The policy requires a signature for every layout but the unsigned staging area of the web
    server's ``/staging``; ``/venvs`` holds an unsigned artifact. However the reference spells
    the server and the path, the web server reads ``/venvs``, so the default rule applies."""
    key = make_key(tmp_path / "keys", "release")
    artifacts.write([wheels.demo1])
    shutil.copytree(artifacts.root, tmp_path / "www" / "venvs")
    (tmp_path / "www" / "staging").mkdir()
    port = web.url.rsplit(":", 1)[1]
    staging = f"oci+http://127.0.0.1:{port}/staging"
    policy = write_policy(pull.tmp / "policy.toml", {}, default=[key.public], unsigned=[staging])
    base = f"oci+http://127.0.0.1:{port}"
    assert "found no signature" in _refused(
        pull, f"{base}/venvs:demo:1.0", "--insecure", "--policy", str(policy)
    )
    for spelling in ("/staging/../venvs", "/staging/%2e%2e/venvs", "/staging/..%2fvenvs"):
        err = _refused(pull, f"{base}{spelling}:demo:1.0", "--insecure", "--policy", str(policy))
        assert "found no signature" in err or "the URL's path" in err, (spelling, err)

    # A scope names one origin: the server on port 80 of a host is not every port's of it.
    policy = write_policy(pull.tmp / "host.toml", {}, default=[key.public], unsigned=["oci+http://127.0.0.1"])
    assert "found no signature" in _refused(
        pull, f"{base}/venvs:demo:1.0", "--insecure", "--policy", str(policy)
    )

    # A scope that requires a signature holds however the host is spelled, and however the scope is.
    for match in (f"oci+http://localhost:{port}/venvs", f"oci+http://LOCALHOST:{port}/venvs/"):
        policy = write_policy(pull.tmp / "strict.toml", {match: [key.public]})
        for host in ("localhost", "LocalHost"):
            err = _refused(
                pull, f"oci+http://{host}:{port}/venvs:demo:1.0", "--insecure", "--policy", str(policy)
            )
            assert "found no signature" in err, (match, host, err)


def test_a_served_index_json_made_to_inflate_in_memory_is_refused_before_it_is_parsed(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, hostile: Callable[..., Hostile]
) -> None:
    """A JSON parser turns each ``{},`` (3 bytes) into a dict of about 64: 40 MiB of them would
    take root on every host past a GiB of memory before a single entry is found wrong; as many
    as the limit lets through stay far below."""
    artifacts.write([wheels.demo1])
    files = _layout_files(artifacts.root, "/venvs")
    files["/venvs/index.json"] = b'{"manifests":[' + b"{}," * ((40 << 20) // 3) + b"{}]}"
    server = hostile(files)
    peak_mib, line = _measured(pull, f"oci+{server.url}/venvs:demo:1.0")
    assert peak_mib < 256, f"venv-pull peaked at {peak_mib} MiB reading an index.json"
    assert f"index.json: larger than {MAX_SERVED_INDEX} bytes" in line, line

    head = b'{"manifests":['
    files["/venvs/index.json"] = head + b"{}," * ((MAX_SERVED_INDEX - len(head) - 4) // 3) + b"{}]}"
    server = hostile(files)
    peak_mib, line = _measured(pull, f"oci+{server.url}/venvs:demo:1.0")
    assert peak_mib < 256, f"venv-pull peaked at {peak_mib} MiB reading an index.json"
    assert "manifests[0]: 'digest' is missing" in line, line


def _measured(pull: Pull, ref: str) -> tuple[int, str]:
    """Run a failing ``venv-pull install ref``; return its peak memory (MiB) and its error line."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(proc.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(proc.returncode)\n"
    )
    argv = pull.argv("install", ref, "--insecure")
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], env=pull.env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.splitlines()
    return int(proc.stdout.strip() or 0) >> 10, line


def test_publish_signs_what_it_verified_not_what_the_tag_names_when_asked_again(
    artifacts: Artifacts, wheels: Wheels, hostile: Callable[..., Hostile], tmp_path: Path
) -> None:
    """``publish oci+https://… oci:DIR --sign-key`` vouches only for what the trusted keys signed: a
    server that names the signed index for the tag once, and another artifact when asked again,
    must not get that other artifact signed with the build's key."""
    trusted, build = make_key(tmp_path / "keys", "upstream"), make_key(tmp_path / "keys", "build")
    signed_ref = artifacts.write([wheels.demo1])
    proc = _venvship("sign", signed_ref, "--key", str(trusted.private))
    assert proc.returncode == 0, proc.stderr
    artifacts.write([wheels.demo2], version="2.0")  # which nobody signed
    layout = Layout(artifacts.root)
    good, other = layout.resolve("demo:1.0"), layout.resolve("demo:2.0")
    files = _layout_files(artifacts.root, "/venvs")
    index = json.loads(files["/venvs/index.json"])
    for entry in index["manifests"]:
        if entry["digest"] == good.digest and entry["annotations"][REF_NAME] == "demo:1.0":
            entry.update(digest=other.digest, size=other.size)
    swapped = json.dumps(index).encode()
    asked: list[int] = []

    def moving(h: http.server.BaseHTTPRequestHandler) -> None:
        asked.append(1)
        _answer(200, files["/venvs/index.json"] if len(asked) == 1 else swapped)(h)

    server = hostile(files, {"/venvs/index.json": moving})
    dest = tmp_path / "copy"
    proc = _venvship(
        "publish",
        f"oci+{server.url}/venvs:demo:1.0",
        f"oci:{dest}",
        "--insecure",
        "--sign-key",
        str(build.private),
        "--trust-key",
        str(trusted.public),
    )
    assert "Traceback" not in proc.stderr
    copied = Layout(dest).resolve("demo:1.0").digest if (dest / "index.json").exists() else None
    assert copied != other.digest, "the build key signed an artifact no trusted key signed"
    assert proc.returncode == 0, proc.stderr
    assert copied == good.digest


def _venvship(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvship.cli.venvship_main", *args],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_publish_reads_each_referrer_once_however_the_lists_loop(
    artifacts: Artifacts, wheels: Wheels, hostile: Callable[..., Hostile], tmp_path: Path
) -> None:
    """Referrers lists that name the same 30 referrers under the artifact and under each of them
    (a loop, walked three levels deep): each is read once, not 30³ times; and past 1024 referrers
    in all, the copy stops."""
    artifacts.write([wheels.demo1])
    top = Layout(artifacts.root).resolve("demo:1.0")
    files = _layout_files(artifacts.root, "/venvs")
    index = json.loads(files["/venvs/index.json"])
    entries = _referrers(files, top, "loop", 30)
    _list_under(files, index, [top.digest, *(e.digest for e in entries)], entries)
    files["/venvs/index.json"] = json.dumps(index).encode()
    server = hostile(files)
    ref = f"oci+{server.url}/venvs:demo:1.0"
    proc = _venvship("publish", ref, f"oci:{tmp_path / 'copy'}", "--insecure", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) < 200, len(server.requests)

    # 256 referrers, and 256 more of each of four of them: 1280 to read.
    files = _layout_files(artifacts.root, "/venvs")
    index = json.loads(files["/venvs/index.json"])
    first = _referrers(files, top, "first", 256)
    _list_under(files, index, [top.digest], first)
    for n, parent in enumerate(first[:4]):
        _list_under(files, index, [parent.digest], _referrers(files, parent, f"more{n}", 256))
    files["/venvs/index.json"] = json.dumps(index).encode()
    server = hostile(files)
    proc = _venvship("publish", f"oci+{server.url}/venvs:demo:1.0", f"oci:{tmp_path / 'copy2'}", "--insecure")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "more than 1024 referrers under" in proc.stderr, proc.stderr


def _referrers(files: dict[str, bytes], of: Descriptor, label: str, count: int) -> tuple[Descriptor, ...]:
    """Serve ``count`` referrer manifests of ``of``; return their referrers-list entries."""
    subject = Descriptor(media_type=of.media_type, digest=of.digest, size=of.size)
    made = [
        referrer_manifest(
            subject=subject, artifact_type="application/x-loop", layers=[], annotations={label: f"{i}"}
        )
        for i in range(count)
    ]
    for raw in [*made, EMPTY_JSON]:
        files[f"/venvs/blobs/sha256/{sha256_digest(raw)[7:]}"] = raw
    return tuple(referrer_entry(raw, media_type=MANIFEST_TYPE) for raw in made)


def _list_under(
    files: dict[str, bytes],
    index: dict[str, list[object]],
    digests: list[str],
    entries: tuple[Descriptor, ...],
) -> None:
    """Serve the referrers list of ``entries`` as the list of each of ``digests`` (index.json's tags)."""
    listing = list_bytes(entries)
    files[f"/venvs/blobs/sha256/{sha256_digest(listing)[7:]}"] = listing
    listed = {"mediaType": INDEX_TYPE, "digest": sha256_digest(listing), "size": len(listing)}
    for digest in digests:
        index["manifests"].append({**listed, "annotations": {REF_NAME: f"demo:{referrers_tag(digest)}"}})


def test_a_tag_moved_to_another_venv_the_same_key_signed_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, hostile: Callable[..., Hostile], tmp_path: Path
) -> None:
    """The release key signs every venv of the release; a server that names another venv's
    signed index for ``demo:1.0`` passes the signature check, not the name check."""
    key = make_key(tmp_path / "keys", "release")
    for ref in (artifacts.write([wheels.demo1]), artifacts.write([wheels.helper], name="other")):
        proc = _venvship("sign", ref, "--key", str(key.private))
        assert proc.returncode == 0, proc.stderr
    other = Layout(artifacts.root).resolve("other:1.0")
    files = _layout_files(artifacts.root, "/venvs")
    index = json.loads(files["/venvs/index.json"])
    for entry in list(index["manifests"]):
        name = entry["annotations"].get(REF_NAME, "")
        if name == "demo:1.0":
            entry.update(digest=other.digest, size=other.size)
        if name.startswith("other:sha256-"):  # other's signatures, listed under demo's name too
            index["manifests"].append({**entry, "annotations": {REF_NAME: "demo:" + name[6:]}})
    files["/venvs/index.json"] = json.dumps(index).encode()
    server = hostile(files)
    policy = write_policy(pull.tmp / "policy.toml", {f"oci+{server.url}/venvs": [key.public]})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:1.0", "--insecure", "--policy", str(policy))
    assert "is the artifact 'other'" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("tag", ["2.0", "2.0-{platform}"])
def test_a_release_tag_moved_to_an_older_signed_release_is_refused(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    hostile: Callable[..., Hostile],
    tmp_path: Path,
    tag: str,
) -> None:
    """The release key signed 1.0 too: a server that serves 1.0 as ``demo:2.0`` passes the
    signature and the name checks, and would roll the host back to what 2.0 fixed."""
    key = make_key(tmp_path / "keys", "release")
    for ref in (artifacts.write([wheels.demo1]), artifacts.write([wheels.demo2], version="2.0")):
        proc = _venvship("sign", ref, "--key", str(key.private))
        assert proc.returncode == 0, proc.stderr
    layout = Layout(artifacts.root)
    old = layout.resolve("demo:1.0")
    [platform] = [
        name[len("demo:1.0-") :]
        for m in json.loads((artifacts.root / "index.json").read_text())["manifests"]
        if (name := m.get("annotations", {}).get(REF_NAME, "")).startswith("demo:1.0-")
    ]
    moved = tag.format(platform=platform)
    files = _layout_files(artifacts.root, "/venvs")
    index = json.loads(files["/venvs/index.json"])
    for m in index["manifests"]:
        names = m.get("annotations", {}).get(REF_NAME, "")
        if names == "demo:1.0":
            stable = {**m, "annotations": {REF_NAME: "demo:stable"}}
        if names == f"demo:{moved}":
            source = old if moved == "2.0" else layout.resolve(f"demo:1.0-{platform}")
            m.update(digest=source.digest, size=source.size)
    index["manifests"].append(stable)
    files["/venvs/index.json"] = json.dumps(index).encode()
    server = hostile(files)
    policy = write_policy(pull.tmp / "policy.toml", {f"oci+{server.url}/venvs": [key.public]})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:{moved}", "--insecure", "--policy", str(policy))
    assert "names release '2.0'" in err and "release '1.0''s" in err and len(err.splitlines()) == 1, err
    # A tag that names no release is the operator's floating choice: 1.0 installs under it.
    result = pull.install(f"oci+{server.url}/venvs:demo:stable", "--insecure", "--policy", str(policy))
    assert result["changed"] is True and pull.python("import demo; print(demo.VERSION)") == "1.0"


def test_a_config_claiming_gigabytes_is_refused_before_a_byte_of_it_is_read(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, hostile: Callable[..., Hostile], tmp_path: Path
) -> None:
    """The config is read to choose a platform, before any signature is checked: a manifest no
    one signed must not make root stream the size it claims into a scratch folder (/tmp, a tmpfs
    on many hosts) first. A config is JSON read whole: one that claims more than 16 MiB is refused."""
    key = make_key(tmp_path / "keys", "release")
    artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    top = layout.resolve("demo:1.0")
    index = json.loads(layout.read_blob(top.digest))
    manifest = json.loads(layout.read_blob(index["manifests"][0]["digest"]))
    claimed = 256 << 20
    manifest["config"]["size"] = claimed
    files = _layout_files(artifacts.root, "/venvs")
    manifest_raw = json.dumps(manifest).encode()
    index["manifests"][0].update(digest=sha256_digest(manifest_raw), size=len(manifest_raw))
    index_raw = json.dumps(index).encode()
    for raw in (manifest_raw, index_raw):
        files[f"/venvs/blobs/sha256/{sha256_digest(raw)[7:]}"] = raw
    served = json.loads(files["/venvs/index.json"])
    for entry in served["manifests"]:
        if entry["annotations"].get(REF_NAME) == "demo:1.0":
            entry.update(digest=sha256_digest(index_raw), size=len(index_raw))
    files["/venvs/index.json"] = json.dumps(served).encode()
    sent: list[int] = []

    def endless(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(claimed))
        h.end_headers()
        block = b"\0" * (1 << 20)
        try:
            for _ in range(claimed >> 20):
                h.wfile.write(block)
                sent.append(len(block))
        except OSError:
            pass  # the client gave up

    server = hostile(files, {f"/venvs/blobs/sha256/{manifest['config']['digest'][7:]}": endless})
    policy = write_policy(pull.tmp / "policy.toml", {f"oci+{server.url}/venvs": [key.public]})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:1.0", "--insecure", "--policy", str(policy))
    assert sum(sent) <= 16 << 20, f"{sum(sent) >> 20} MiB of a config read before any check"
    assert f"{claimed} bytes" in err and len(err.splitlines()) == 1, err


def test_an_index_of_thousands_of_fitting_platforms_is_refused_before_one_is_read(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, hostile: Callable[..., Hostile], tmp_path: Path
) -> None:
    """Each fitting entry of an index costs a manifest and a config read before any signature is
    checked: a server that lists thousands (each naming a python this host lacks) would have root
    ask for all of them. An index lists a platform per build host: more than 256 is refused."""
    key = make_key(tmp_path / "keys", "release")
    artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    top = layout.resolve("demo:1.0")
    index = json.loads(layout.read_blob(top.digest))
    entry = index["manifests"][0]
    manifest = json.loads(layout.read_blob(entry["digest"]))
    files = _layout_files(artifacts.root, "/venvs")
    entries = []
    for i in range(2000):  # each its own manifest, for a python ABI no host has
        raw = json.dumps(
            {**manifest, "annotations": {**manifest.get("annotations", {}), "n": f"{i}"}}
        ).encode()
        files[f"/venvs/blobs/sha256/{sha256_digest(raw)[7:]}"] = raw
        ann = {**entry["annotations"], ANN_PYTHON: "cp00"}
        entries.append({**entry, "digest": sha256_digest(raw), "size": len(raw), "annotations": ann})
    index["manifests"] = entries
    index_raw = json.dumps(index).encode()
    files[f"/venvs/blobs/sha256/{sha256_digest(index_raw)[7:]}"] = index_raw
    served = json.loads(files["/venvs/index.json"])
    for ref in served["manifests"]:
        if ref["annotations"].get(REF_NAME) == "demo:1.0":
            ref.update(digest=sha256_digest(index_raw), size=len(index_raw))
    files["/venvs/index.json"] = json.dumps(served).encode()
    server = hostile(files)
    policy = write_policy(pull.tmp / "policy.toml", {f"oci+{server.url}/venvs": [key.public]})
    err = _refused(pull, f"oci+{server.url}/venvs:demo:1.0", "--insecure", "--policy", str(policy))
    assert len(server.requests) < 10, f"{len(server.requests)} requests before any signature check"
    assert "2000 platforms, more than 256" in err and len(err.splitlines()) == 1, err


def test_inspect_writes_no_line_or_terminal_control_an_artifact_carries(
    artifacts: Artifacts, wheels: Wheels
) -> None:
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    top = layout.resolve("demo:1.0")
    forged = "application/x\x1b[2J\n  signed by key 0000forged (as claimed; venv-pull --policy verifies)"
    raw = referrer_manifest(
        subject=Descriptor(media_type=top.media_type, digest=top.digest, size=top.size),
        artifact_type=forged,
        layers=[],
    )
    LayoutStore(layout, "demo").attach(raw, [EMPTY_JSON])
    proc = _venvship("inspect", ref)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "0000forged" in proc.stdout, proc.stdout
    assert not any(line.startswith("  signed by key 0000forged") for line in proc.stdout.splitlines())
