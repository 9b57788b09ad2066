"""Targets: independent implementations of the send path. Nothing here imports spec/ or
conformance/ (the architecture check in CI enforces it)."""
