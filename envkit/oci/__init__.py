"""OCI image-spec types, digests and layer tars."""
