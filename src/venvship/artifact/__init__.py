"""The artifact contract both sides read (DESIGN §4): the OCI documents, the config blob, the
ready-to-run layer format, signature payloads, strict JSON, and the rules for install paths and
install pip-args. Stdlib only: the target side reads these on bare hosts.
"""
