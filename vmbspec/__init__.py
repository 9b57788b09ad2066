"""vmbspec: the executable specification and conformance suite for VmbPacketSendWithExternalMdl.

One import namespace, so that installing vmbspec never collides with another distribution's
top-level ``spec``, ``conformance`` or ``adapters`` package:

- ``vmbspec.spec``: the executable specification (the repository's ``spec/`` folder);
- ``vmbspec.conformance``: the conformance suite, the CLI and the pytest plugin (``conformance/``);
- ``vmbspec.adapters``: the targets: simulator, Rust core, native and remote (``adapters/``).

In the repository the three are symbolic links to the top-level folders, which keep the layout
readable; a wheel holds them as ordinary packages under ``vmbspec/``.
"""
