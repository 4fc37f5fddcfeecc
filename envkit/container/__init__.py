"""Containers as users hold them: the handle, the run options, image resolution and the
monitor process that holds detached containers (:mod:`.monitor`)."""
