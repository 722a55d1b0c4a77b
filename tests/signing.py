"""Signing keys made by the real openssl, and trust policies written the way an admin would."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


@dataclass(frozen=True)
class KeyPair:
    """An ECDSA P-256 key pair in PEM files, made by ``openssl`` (what the how-to tells users)."""

    private: Path
    public: Path


def make_key(folder: Path, name: str) -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    subprocess.run(
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", private],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "ec", "-in", private, "-pubout", "-out", public], check=True, capture_output=True
    )
    private.chmod(0o600)
    return KeyPair(private=private, public=public)


def write_policy(
    path: Path,
    scopes: Mapping[str, Sequence[Path]],
    *,
    default: Sequence[Path] | None = None,
    unsigned: Sequence[str] = (),
) -> Path:
    """Write a policy requiring a signature by ``scopes[match]``'s keys there (``default``: everywhere
    else; ``unsigned``: scopes that need none), as TOML, or as JSON if ``path`` ends in ``.json``."""
    doc: dict[str, object] = {
        "default": {"require-signature": default is not None, "keys": [str(k) for k in default or ()]},
        "scope": [
            *(
                {"match": m, "require-signature": True, "keys": [str(k) for k in keys]}
                for m, keys in scopes.items()
            ),
            *({"match": m, "require-signature": False} for m in unsigned),
        ],
    }
    if path.suffix == ".json":
        path.write_text(json.dumps(doc))
        return path
    lines = [
        "[default]",
        f"require-signature = {json.dumps(default is not None)}",
        f"keys = {json.dumps([str(k) for k in default or ()])}",
    ]
    for scope in doc["scope"]:  # type: ignore[attr-defined]
        lines += ["", "[[scope]]", *(f"{k} = {json.dumps(v)}" for k, v in scope.items())]
    path.write_text("\n".join(lines) + "\n")
    return path
