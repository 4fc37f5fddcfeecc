"""``override`` (PEP 698) for the classes that implement an interface or extend a base
class: the built-in plugins' backends, sources and providers, :class:`DirectoryBackend`
and its subclasses (plugin authors get it as ``envkit.plugins.override``).

Type checkers see ``typing_extensions.override`` itself: mypy then reports an
``@override`` method that overrides nothing (a base method renamed or removed). At run
time it is this function, which marks the method as ``typing_extensions.override`` does
(``__override__ = True``) without importing ``typing_extensions``: every command that
loads the plugin manager (``envkit --help`` included) imports these modules, and
``typing_extensions`` would cost it ~2 ms (3%) for a decorator that changes nothing.
"""

from __future__ import annotations

import contextlib

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing_extensions import override as override
else:

    def override(method):
        """Mark ``method`` as overriding a base class's (``__override__ = True``)."""
        with contextlib.suppress(AttributeError, TypeError):  # as typing_extensions
            method.__override__ = True
        return method
