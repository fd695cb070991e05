"""Talking to Kea DHCPv4: transports (how commands travel) and config edits (what changes)."""
