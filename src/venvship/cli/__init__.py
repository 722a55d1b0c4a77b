"""Command lines: ``venvship`` (build side) and ``venv-pull`` (target side)."""
