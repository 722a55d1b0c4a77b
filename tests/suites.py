"""The suites that need Debian roots, named once for the tests session (noxfile.py), which runs
them beside the rest, and for pytest (tests/integration/conftest.py), which runs them last in a
single run. Standard library only: nox imports it from its own venv."""

from __future__ import annotations

# Folders under tests/integration, in the order a single run takes them.
ROOT_SUITES = ("role", "arm64", "targets")
# Suites that need no root but go in the tests session's second run, ahead of the root suites: they
# fill the minutes in which that run's roots are made, and the two runs end closer together.
BESIDE_ROOTS = ("registry",)
