"""The target side: select, pull, install, switch and report a venv from an OCI artifact.

Stdlib only (DESIGN §2): this package runs on bare hosts whose only Python is the distro's.
"""
