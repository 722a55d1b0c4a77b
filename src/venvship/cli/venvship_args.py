"""The registry and signing options the ``venvship`` commands share, and what they make: the
registry ``Access`` (the password read from stdin once) and the signing key."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._process import withhold
from ..errors import VenvshipError

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..builder.signer import SigningKey
    from ..oci.reference import Ref, RegistryRef
    from ..oci.source import Access

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def registry_access(args: argparse.Namespace, *refs: Ref) -> Access:
    """The registry options of ``args``; the password is read from stdin once, here.

    ``--username`` is for the registry (or web server) of ``refs`` (the command's destination, or its
    one source): any other registry the command reaches (``--reuse-from``) gets its own stored login.
    """
    from ..oci.auth import Credentials
    from ..oci.reference import HttpLayoutRef, RegistryRef
    from ..oci.source import Access

    creds, host = None, None
    if args.username:
        if not args.password_stdin:
            raise VenvshipError("--username needs --password-stdin (passwords never go on the command line)")
        hosts = sorted(
            {r.registry.lower() for r in refs if isinstance(r, RegistryRef)}
            | {r.host.lower() for r in refs if isinstance(r, HttpLayoutRef)}  # a web server's login
        )
        if len(hosts) != 1:
            raise VenvshipError(
                "--username: credentials are for one registry, and this command names "
                + (f"several ({', '.join(hosts)})" if hosts else "none")
                + "; log in to each with docker login instead"
            )
        host = hosts[0]
        creds = Credentials(username=args.username, password=sys.stdin.readline().rstrip("\n"))
        withhold(creds.password)  # the job's environment may hold it too (CI_REGISTRY_PASSWORD)
    realms = tuple(h.lower() for h in args.token_realm_host or ())
    return Access(
        insecure=args.insecure,
        ca_file=args.ca_file,
        credentials=creds,
        credentials_for=host,
        token_realm_hosts=realms,
    )


def registry_ref(text: str, what: str) -> RegistryRef:
    from ..oci.reference import RegistryRef, parse_ref

    ref = parse_ref(text)
    if not isinstance(ref, RegistryRef):
        raise VenvshipError(f"{text}: not {what}")
    return ref


def sign_key(args: argparse.Namespace) -> SigningKey | None:
    """Return the key of ``--sign-key``, read before any work starts (a bad key fails fast)."""
    if not args.sign_key:
        if getattr(args, "signature_format", None):
            raise VenvshipError("--signature-format: only with --sign-key (it says how that key signs)")
        return None
    from ..builder.signer import load_signing_key

    return load_signing_key(args.sign_key, signature_format=args.signature_format or "simple")


def add_immutable_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--immutable-tags",
        action="store_true",
        help="refuse to move an existing tag to other content (for CI); without it, a move is reported",
    )


def add_registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP to the registry or web server")
    p.add_argument("--ca-file", metavar="FILE", help="CA bundle for the registry's TLS certificate")
    p.add_argument("--username", help="registry user (else docker config.json / REGISTRY_AUTH_FILE)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--token-realm-host",
        action="append",
        metavar="HOST[:PORT]",
        help="another host whose Bearer token realm may receive the credentials (repeatable)",
    )


def add_sign_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--sign-key", metavar="KEY", help=f"{what}: a PEM file or env://NAME, as sign --key")
    add_format_option(p, default=None)


def add_format_option(p: argparse.ArgumentParser, *, default: str | None) -> None:
    from ..artifact.siglisting import SIGNATURE_FORMATS

    p.add_argument(
        "--signature-format",
        choices=SIGNATURE_FORMATS,
        default=default,
        help="simple: cosign's simple-signing referrer (the default, read by every cosign); "
        "bundle: a Sigstore bundle as cosign v3 writes it",
    )


def add_vouch_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--trust-key",
        action="append",
        metavar="PUB",
        help=f"{what}: also accept content signed by this public key (repeatable; e.g. the old key of a rollover)",
    )
    p.add_argument(
        "--vouch-unverified",
        action="store_true",
        help=f"{what}: sign it even though no trusted key signed it; you vouch for what the registry serves",
    )
