"""Test PKI: a CA and server certificate for TLS (openssl CLI), and a JWT token server."""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

USER, PASSWORD = "alice", "s3cret-pw"


# -- certificates (openssl CLI) ---------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def self_signed(workdir: Path, cn: str) -> tuple[Path, Path]:
    """Return (cert, key) of a self-signed certificate (the token issuer's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={cn}",
        cwd=workdir,
    )
    return workdir / "cert.pem", workdir / "key.pem"


def make_tls_certs(workdir: Path) -> tuple[Path, Path, Path]:
    """Return (CA cert, server cert, server key) for 127.0.0.1, signed by a fresh test CA."""
    workdir.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=venvship test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=workdir,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=workdir,
    )
    (workdir / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        cwd=workdir,
    )
    return workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"


# -- token server ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A distribution token server on 127.0.0.1: RS256 JWTs with ``x5c``; grants alice everything.

    Anonymous requests get a token with no access; a wrong password gets 401.
    """

    service = "test-registry"
    issuer = "test-issuer"

    def __init__(self, workdir: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self.cert, key_path = self_signed(workdir, "test-token-issuer")
        self._key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self._x5c = base64.b64encode(ssl.PEM_cert_to_DER_cert(self.cert.read_text())).decode()
        self.requests: list[tuple[str | None, tuple[str, ...]]] = []
        self.ttl = 300
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def registry_auth(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert),
            }
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(req.path).query)
        scopes = tuple(query.get("scope", []))
        header = req.headers.get("Authorization", "")
        user: str | None = None
        if header.startswith("Basic "):
            name, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            if (name, pw) != (USER, PASSWORD):
                self.requests.append(("<bad>", scopes))
                req.send_response(401)
                req.send_header("Content-Length", "0")
                req.end_headers()
                return
            user = name
        self.requests.append((user, scopes))
        access = []
        if user:
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        body = json.dumps({"token": self._jwt(claims), "expires_in": self.ttl}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _jwt(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        assert isinstance(self._key, rsa.RSAPrivateKey)
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"
