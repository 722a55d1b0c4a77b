"""Integration tests of venv-pull (the target side)."""
