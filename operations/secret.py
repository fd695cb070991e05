"""Auth keys that never reach pyinfra's output.

pyinfra prints operation arguments (op names), commands (-v, --dry) and
JSON plans; a key must therefore travel as an object whose repr is masked,
and reach the router only on the stdin of `tailscale up` (--auth-key=file:/dev/stdin),
never in a command line or a file.
"""

from __future__ import annotations

import io


class SecretStdin(io.StringIO):
    """stdin payload for one command; masked in repr/str so logs show no key."""

    def __repr__(self) -> str:
        return "<secret stdin>"

    __str__ = __repr__


class AuthKey:
    """A Tailscale/Headscale pre-auth key (the site file's, read from its env var or file)."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, *, source: str = "value"):
        if not value.strip():
            raise ValueError(f"auth key from {source} is empty")
        self._value = value.strip()
        self.source = source

    def cli_value(self) -> str:
        """What follows --auth-key=: a file: reference to stdin, never the key itself."""
        return "file:/dev/stdin"

    def stdin(self) -> SecretStdin:
        """A fresh stdin buffer carrying the key."""
        return SecretStdin(self._value + "\n")

    def __repr__(self) -> str:
        return f"AuthKey(<hidden>, {self.source})"

    __str__ = __repr__
