"""Nox plugin: build venvship recipes from any project's noxfile.

Example, in a ``noxfile.py``::

    import nox
    from venvship.noxplugin import build

    @nox.session(python=False)
    def venvs(session: nox.Session) -> None:
        build(session, recipes=["recipes/"], output="oci:build/oci")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from .errors import VenvshipError


class _SessionLogHandler(logging.Handler):
    def __init__(self, session: Any) -> None:
        super().__init__(logging.INFO)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        self.session.log(self.format(record))


def build(
    session: Any,
    *,
    recipes: Sequence[str] = ("recipes",),
    output: str = "oci:build/oci",
    reuse_from: str | None = None,
    rebuild_wheels: bool = False,
    cache: str | None = None,
) -> list[str]:
    """Build ``recipes`` into ``output`` (an ``oci:DIR`` layout); return the refs built.

    Progress goes to ``session.log``; a failure ends the session through ``session.error``.
    """
    from .builder.recipebuild import build_recipe
    from .oci.layout import Layout
    from .oci.reference import LayoutRef, parse_ref
    from .recipe import find_recipes, load_recipe

    log = logging.getLogger("venvship")
    handler = _SessionLogHandler(session)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    propagate, log.propagate = log.propagate, False  # nox's root handler would print each line again
    refs = []
    try:
        target = parse_ref(output)
        if not isinstance(target, LayoutRef) or target.name:
            raise VenvshipError(f"{output}: output must be oci:DIR")
        layout = Layout.create(target.path)
        files = find_recipes([Path(r) for r in recipes])
        if not files:
            raise VenvshipError(f"no recipes in {', '.join(recipes)}")
        for path in files:
            result = build_recipe(
                load_recipe(path),
                output=layout,
                cache=Path(cache) if cache else None,
                reuse_from=reuse_from,
                rebuild_wheels=rebuild_wheels,
            )
            if result.status == "unchanged":
                session.log(f"{result.name}: unchanged ({result.ref})")
            else:
                session.log(
                    f"{result.name}: built {result.ref} {result.digest[:19]} "
                    f"({len(result.built)} wheels built, {len(result.cached)} cached)"
                )
            refs.append(result.ref)
    except VenvshipError as exc:
        session.error(str(exc))
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    return refs
