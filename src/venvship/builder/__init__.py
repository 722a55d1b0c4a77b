"""The build side: a recipe → a locked wheelhouse → ready-to-run layers → an OCI artifact, with
its SBOM, provenance and signatures. Never imports install/ (tests/unit/test_package_layers.py)."""
