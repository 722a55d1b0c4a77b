"""The target side, ``venv-pull``: an install as its steps (plan → fetch → stage → check → switch →
record, in installer.py), the generations of a destination, the host's store of unpacked layers,
facts, and the commands on installed venvs (status, rollback, verify, prune).

Stdlib only (DESIGN §2): this package runs on bare hosts whose only Python is the distro's.
"""
