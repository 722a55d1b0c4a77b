"""The OCI transport both sides use: references, image layout directories, the distribution-spec
client, publish, referrers and mirrors. Stdlib only."""
