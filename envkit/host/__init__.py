"""The bottom layer: what talks to the kernel for everyone above it.

Syscalls through ctypes (:mod:`~envkit.host.syscalls`, :mod:`~envkit.host.prctl`), the
user-namespace id maps (:mod:`~envkit.host.idmap`, :mod:`~envkit.host.userns_cache`),
running a function as container root (:mod:`~envkit.host.as_root`) and the one way to
fork a child and get its answer back. ``runtime``, ``network``, ``store`` and ``build``
import from here; nothing here imports them.
"""
