"""What a venv on disk is, for both sides: creating one, RECORD files, bytecode, linked distro
packages, and reading its files safely. The builder lays layers out with it; venv-pull fills and
verifies generations with it. Stdlib only.
"""
