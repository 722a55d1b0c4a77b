"""OCI plumbing: references, image layout directories and the distribution-spec client."""
