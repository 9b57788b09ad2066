"""The conformance suite: runs against any target through an adapter, with the spec as oracle."""
