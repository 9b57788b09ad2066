"""The executable specification of VmbPacketSendWithExternalMdl (pure Python, no I/O)."""
