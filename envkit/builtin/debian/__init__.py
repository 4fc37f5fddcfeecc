"""``Image.debian(...)``: a Debian root file system bootstrapped from a Debian mirror.

The pipeline, one module each: :mod:`.mirror` (which mirror), :mod:`.release` (the signed
Release file), :mod:`.packages` (the Packages index), :mod:`.resolve` (the package set),
:mod:`.fetch` (verified, cached downloads), :mod:`.deb` (reading .deb files),
:mod:`.bootstrap` (unpack and configure in a container) and :mod:`.source` (the image
source plugin, its cache and the resulting image).
"""
