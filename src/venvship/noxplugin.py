"""Nox plugin: build venvship recipes from any project's noxfile.

Example, in a ``noxfile.py``::

    import nox
    from venvship.noxplugin import build

    @nox.session(python=False)
    def venvs(session: nox.Session) -> None:
        build(session, recipes=["recipes/"], output="oci:build/oci")
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import VenvshipError

if TYPE_CHECKING:
    from .oci.reference import Ref
    from .oci.source import Access


class _SessionLogHandler(logging.Handler):
    def __init__(self, session: Any) -> None:
        super().__init__(logging.INFO)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        self.session.log(self.format(record))


def _bound(access: Access | None, target: Ref | None) -> Access | None:
    """Return ``access`` with credentials that name no registry bound to ``target``'s, as the
    CLI binds ``--username`` to its ``--output``: a ``reuse_from`` registry elsewhere that asks
    for a login must not receive the output registry's password."""
    from .oci.reference import RegistryRef

    if access is None or access.credentials is None or access.credentials_for is not None:
        return access
    if not isinstance(target, RegistryRef):
        return access
    return dataclasses.replace(access, credentials_for=target.registry.lower())


def build(
    session: Any,
    *,
    recipes: Sequence[str] = ("recipes",),
    output: str = "oci:build/oci",
    reuse_from: str | None = None,
    rebuild_wheels: bool = False,
    refresh: bool = False,
    cache: str | None = None,
    pythons: Sequence[str] = (),
    access: Access | None = None,
) -> list[str]:
    """Build ``recipes`` into ``output`` (``oci:DIR``, or a registry namespace ``HOST/NAMESPACE``,
    reached as ``access`` says); return the refs built. The same build as ``venvship build``.
    Credentials in ``access`` that name no registry are for the output registry (with a layout
    output, for ``reuse_from``'s), never sent elsewhere.

    Progress goes to ``session.log``; a failure ends the session through ``session.error``.
    """
    from .builder.batch import build_recipes
    from .builder.recipebuild import BuildOptions
    from .oci.reference import RegistryRef, parse_ref

    log = logging.getLogger("venvship")
    handler = _SessionLogHandler(session)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    propagate, log.propagate = log.propagate, False  # nox's root handler would print each line again
    refs: list[str] = []
    try:
        out_ref = parse_ref(output)
        reuse_ref = parse_ref(reuse_from) if reuse_from else None
        access = _bound(access, out_ref if isinstance(out_ref, RegistryRef) else reuse_ref)
        options = BuildOptions(
            cache=Path(cache) if cache else None,
            pythons=tuple(pythons),
            reuse_from=reuse_ref,
            reuse_access=access,
            rebuild_wheels=rebuild_wheels,
            refresh=refresh,
        )
        run = build_recipes([Path(r) for r in recipes], output=out_ref, options=options, access=access)
        for result in run.results:
            session.log(result.summary())
            refs.append(result.ref)
        if run.published is not None:
            session.log(f"{output}: published {', '.join(run.published.tags)}")
    except VenvshipError as exc:
        session.error(str(exc))
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    return refs
