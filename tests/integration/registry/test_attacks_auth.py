"""Registry logins and TLS attacked by a local user (#19): root runs venv-pull from a shell that
kept that user's environment and working folder (``su`` without ``-`` keeps ``XDG_RUNTIME_DIR``,
``SSL_CERT_FILE`` and the folder it was started in). The user's ``containers/auth.json`` names a
credential helper; their CA bundle would let them answer for any registry.

Each test fails on the venv-pull before its fix: root ran the user's program as the helper, or
trusted the user's CAs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import needs_root

from ._support import RegistryServer, install_argv

pytestmark = [
    pytest.mark.registry,
    needs_root,
]
SRC = Path(__file__).resolve().parents[3] / "src"


def _as_nobody(*argv: str) -> None:
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv], check=True)


def test_a_users_auth_file_never_chooses_a_program_root_runs(
    htpasswd_registry: RegistryServer, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir(mode=0o777)
    box.chmod(0o777)
    # The user's own folders: their runtime folder and the one root's shell was started in.
    runtime, home = tmp_path / "run-user", tmp_path / "alice"
    for folder in (runtime, home):
        folder.mkdir()
        os.chown(folder, 65534, 65534)
    _as_nobody("mkdir", "-p", str(runtime / "containers"), str(home / "docker-credential-x"))
    auth = f'{{"credHelpers": {{"{htpasswd_registry.host}": "x/evil"}}}}'
    _as_nobody("sh", "-c", f"echo '{auth}' > {runtime}/containers/auth.json")
    evil = home / "docker-credential-x" / "evil"
    _as_nobody("sh", "-c", f"printf '#!/bin/sh\\nid -u >> {box}/ran\\n' > {evil} && chmod 755 {evil}")
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_RUNTIME_DIR": str(runtime)}
    argv = [sys.executable, "-P", "-m", "venvship.cli.venv_pull_main"]
    argv += install_argv(f"{htpasswd_registry.host}/demo:1.0", tmp_path, "--insecure")
    proc = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=120)
    assert not (box / "ran").exists(), (box / "ran").read_text()
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"{runtime}/containers/auth.json" in proc.stderr, proc.stderr  # the warning names it


def test_a_ca_bundle_another_user_can_change_is_refused(tls_registry: RegistryServer, tmp_path: Path) -> None:
    # The same kept environment names the user's CA bundle: whoever holds its key could then
    # answer for any registry root pulls from.
    assert tls_registry.tls_ca is not None
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    bundle = theirs / "ca.pem"
    bundle.write_bytes(tls_registry.tls_ca.read_bytes())  # the CA the "registry" answers with
    os.chown(bundle, 65534, 65534)
    env = {**os.environ, "PYTHONPATH": str(SRC), "SSL_CERT_FILE": str(bundle)}
    argv = [sys.executable, "-P", "-m", "venvship.cli.venv_pull_main"]
    argv += install_argv(f"{tls_registry.host}/demo:1.0", tmp_path)
    proc = subprocess.run(argv, env=env, cwd="/", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"venv-pull: error: {bundle} (owner nobody, mode 0644): SSL_CERT_FILE must be owned by root "
        "and not writable by group or others"
    ], proc.stderr
