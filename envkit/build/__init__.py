"""The build engine: ignore rules, build-context hashing, Dockerfile import, step cache keys."""
