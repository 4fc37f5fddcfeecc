"""envkit's own parts, registered through the same hooks as third-party plugins."""
