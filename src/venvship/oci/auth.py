"""Registry credentials and ``WWW-Authenticate`` challenges (stdlib only; used by both sides).

Credentials come from, in order: explicit :class:`Credentials`, ``REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, then Docker's ``config.json`` (``$DOCKER_CONFIG`` or
``~/.docker``) with its ``credHelpers``, ``credsStore`` and ``auths``. Nothing here writes
credentials anywhere, and nothing logs them.

A config file names programs (``docker-credential-<helper>``): as root, one that another user can
change is not read (``su`` keeps that user's ``XDG_RUNTIME_DIR``), a helper's name is a plain word
looked up on ``PATH`` (never a path, which would be resolved in the working folder), and the helper
runs in ``/``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .._log import logger
from .._process import ISOLATED_CWD, run
from ..errors import ProcessError, RegistryError, TrustError
from ..host.trust import check_tree

# What Docker's helpers are called (pass, secretservice, ecr-login): a word, never a path.
_HELPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry; the secret never shows in ``repr``."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        """Return the ``Authorization`` value for HTTP Basic auth."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: the scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Return the challenges in ``WWW-Authenticate`` header values (RFC 7235 syntax).

    Example: ``parse_challenges(['Bearer realm="https://a/token",service="reg"'])``
    → ``[Challenge(scheme="bearer", params={"realm": "https://a/token", "service": "reg"})]``
    """
    out: list[Challenge] = []
    for value in values:
        out.extend(_parse_one(value))
    return out


def _parse_one(text: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    scheme: str | None = None
    params: dict[str, str] = {}
    pos, end = 0, len(text)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and text[pos] in chars:
            pos += 1

    while True:
        skip(" \t,")
        if pos >= end:
            break
        start = pos
        while pos < end and text[pos] not in " \t,=":
            pos += 1
        token = text[start:pos]
        skip(" \t")
        token68 = pos + 1 >= end or text[pos + 1] in "=,"  # ``Basic abc==``: trailing '=' padding
        if pos < end and text[pos] == "=" and scheme is not None and not token68:
            pos += 1
            skip(" \t")
            if pos < end and text[pos] == '"':
                pos += 1
                chars = []
                while pos < end and text[pos] != '"':
                    if text[pos] == "\\" and pos + 1 < end:
                        pos += 1
                    chars.append(text[pos])
                    pos += 1
                pos += 1  # closing quote
                value = "".join(chars)
            else:
                start = pos
                while pos < end and text[pos] not in " \t,":
                    pos += 1
                value = text[start:pos]
            params[token.lower()] = value
        elif pos < end and text[pos] == "=":
            # A token68 right after the scheme (``Basic abc==``): not used by registries; skip it.
            while pos < end and text[pos] not in ",":
                pos += 1
        else:
            if scheme is not None:
                challenges.append(Challenge(scheme=scheme, params=params))
            scheme, params = token.lower(), {}
    if scheme is not None:
        challenges.append(Challenge(scheme=scheme, params=params))
    return challenges


# -- lookup --------------------------------------------------------------------------------------


def load_credentials(
    registry: str,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Credentials | None:
    """Return the stored credentials for ``registry`` (``host[:port]``), or None if there are none.

    Example: ``load_credentials("ghcr.io")`` reads ``~/.docker/config.json`` and its helpers.
    """
    env = os.environ if environ is None else environ
    home_dir = home if home is not None else Path(env.get("HOME") or Path.home())
    for path in _config_files(env, home_dir):
        if not _trusted(path):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot read %s: %s", path, exc)
            continue
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise RegistryError(f"{path}: not valid JSON ({exc}); fix or remove it") from exc
        if not isinstance(config, dict):
            raise RegistryError(f"{path}: not a JSON object; fix or remove it")
        creds = _from_config(config, registry, path=path, environ=env)
        if creds is not None:
            logger.debug("using credentials for %s from %s", registry, path)
            return creds
    return None


def _trusted(path: Path) -> bool:
    """Whether logins may be read from ``path``: as root, only if nobody else can change it (a
    missing one is skipped by the read)."""
    if not os.path.lexists(path):
        return True
    try:
        check_tree(path, what="a registry login file")
    except TrustError as exc:
        logger.warning("%s: its logins and credential helpers are not used", exc)
        return False
    return True


def _config_files(env: Mapping[str, str], home: Path) -> list[Path]:
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    elif env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    files.append(docker_dir / "config.json")
    return files


def _registry_keys(registry: str) -> list[str]:
    """Return the spellings of ``registry`` that Docker and podman use as ``auths`` keys."""
    keys = [
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v1/",
        f"https://{registry}/v2/",
    ]
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys += ["https://index.docker.io/v1/", "docker.io", "index.docker.io"]
    return keys


def _from_config(
    config: Mapping[str, Any], registry: str, *, path: Path, environ: Mapping[str, str]
) -> Credentials | None:
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in _registry_keys(registry):
            if isinstance(helpers.get(key), str):
                return _from_helper(helpers[key], key, environ=environ, where=f"{path}: credHelpers")
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        creds = _from_helper(store, registry, environ=environ, where=f"{path}: credsStore")
        if creds is not None:
            return creds
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in _registry_keys(registry):
        entry = auths.get(key)
        if isinstance(entry, dict):
            creds = _from_auth_entry(entry, where=f"{path}: auths[{key!r}]")
            if creds is not None:
                return creds
    return None


def _from_auth_entry(entry: Mapping[str, Any], *, where: str) -> Credentials | None:
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise RegistryError(f"{where}: 'auth' is not base64 of user:password") from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryError(f"{where}: 'auth' is not base64 of user:password")
        return Credentials(username=user, password=password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credentials(username=name, password=secret)
    if entry.get("identitytoken"):
        logger.warning("%s: identity tokens are not supported; log in with a password or token", where)
    return None


def _from_helper(name: str, server: str, *, environ: Mapping[str, str], where: str) -> Credentials | None:
    """Ask ``docker-credential-<name> get`` for ``server``; None when it has nothing stored."""
    if not _HELPER.fullmatch(name):
        raise RegistryError(f"{where}: {name!r} is not the name of a credential helper")
    argv = [f"docker-credential-{name}", "get"]
    try:
        proc = run(
            argv,
            stdin=server,
            check=False,
            env=dict(environ),
            cwd=ISOLATED_CWD,  # a relative PATH entry never names the caller's working folder
            secret_output=True,
            kind="probe",
        )
    except ProcessError as exc:
        raise RegistryError(
            f"{server}: credential helper {argv[0]} cannot run ({exc.output.strip()}); "
            "install it or remove it from your Docker config"
        ) from exc
    out = proc.stdout or ""
    if proc.returncode != 0:
        if "not found" in out.lower():
            return None
        first = out.strip().splitlines()[0] if out.strip() else "no output"
        raise RegistryError(f"{server}: credential helper {argv[0]} failed ({first[:200]})")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise RegistryError(f"{server}: credential helper {argv[0]} printed no JSON") from exc
    user = data.get("Username") if isinstance(data, dict) else None
    secret = data.get("Secret") if isinstance(data, dict) else None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    if user == "<token>":
        logger.warning("%s: identity tokens from %s are not supported", server, argv[0])
        return None
    return Credentials(username=user, password=secret)
