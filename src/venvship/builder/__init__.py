"""The build side: recipes → locked wheelhouse → OCI artifact."""
