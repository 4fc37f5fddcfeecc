"""The rootless container runtime: namespaces, rootfs, spawn, exec (see issue 3)."""
