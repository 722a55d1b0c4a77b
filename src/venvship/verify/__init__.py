"""What an artifact must pass before a host takes it, on either side: the manifest that fits this
host, the trust policy, the signatures, and the installer-tool wheels venv-pull may run. Stdlib only.
"""
