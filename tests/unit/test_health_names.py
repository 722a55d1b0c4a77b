"""The names the health check imports: the recipe's own distributions, read from PEP 508 lines."""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from venvship.install.health import canonical_name, requested_names

LINES = [
    "keystone==30.0.0",
    "python_memcached",
    "gamma @ git+file:///src/gamma@0123abc",
    "Zope.Interface>=5; python_version > '3'",
    "uWSGI[extra] ==2.0.31",
]


def test_requested_names_agree_with_packaging() -> None:
    # The target side may not import packaging; its short reader must give packaging's answer.
    assert requested_names(LINES) == {canonicalize_name(Requirement(line).name) for line in LINES}


def test_canonical_name_follows_pep_503() -> None:
    for name in ("Foo_Bar.baz", "foo--bar", "FOO.BAR_baz"):
        assert canonical_name(name) == canonicalize_name(name)
