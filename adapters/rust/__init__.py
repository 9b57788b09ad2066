"""The Rust core (``vmbcore``): a Cargo crate in this directory, built by :mod:`.build`."""
