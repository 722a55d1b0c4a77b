"""Facts about a host and its interpreters, its distro package manager, the trust rules for paths
root may use, and the settings files under ``/etc/venvship``. Stdlib only (both sides).
"""
