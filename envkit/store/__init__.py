"""The local content store: an OCI image layout with refs, locks, gc and fsck."""
