"""The suites that need Debian roots, named once for the tests session (noxfile.py), which runs
them beside the rest, and for pytest (tests/integration/conftest.py), which runs them last in a
single run. Standard library only: nox imports it from its own venv."""

from __future__ import annotations

# Folders under tests/integration, in the order a single run takes them.
ROOT_SUITES = ("role", "arm64", "targets")
