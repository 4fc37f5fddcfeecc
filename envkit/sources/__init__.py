"""Built-in image sources that build base images without a registry (``Image.debian``)."""
