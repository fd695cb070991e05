"""Auth keys that never reach pyinfra's output.

pyinfra prints operation arguments (op names), commands (-v, --dry) and
JSON plans; a key must therefore travel as an object whose repr is masked,
and reach the router only on the stdin of `tailscale up` (--auth-key=file:/dev/stdin),
never in a command line or a file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path


class SecretStdin(io.StringIO):
    """stdin payload for one command; masked in repr/str so logs show no key."""

    def __repr__(self) -> str:
        return "<secret stdin>"

    __str__ = __repr__


class AuthKey:
    """A Tailscale/Headscale pre-auth key read from a file, the environment or a remote path."""

    __slots__ = ("_value", "remote_path", "source")

    def __init__(self, value: str | None = None, *, remote_path: str | None = None, source: str = "value"):
        if (value is None) == (remote_path is None):
            raise ValueError("AuthKey needs exactly one of a value or a remote path")
        if value is not None and not value.strip():
            raise ValueError(f"auth key from {source} is empty")
        self._value = value.strip() if value is not None else None
        self.remote_path = remote_path
        self.source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "AuthKey":
        try:
            return cls(Path(path).read_text(), source=f"file {path}")
        except OSError as e:
            raise ValueError(f"cannot read auth key file {path}: {e.strerror}") from None

    @classmethod
    def from_env(cls, name: str) -> "AuthKey":
        value = os.environ.get(name)
        if value is None:
            raise ValueError(f"auth key environment variable {name} is not set")
        return cls(value, source=f"env {name}")

    @classmethod
    def on_host(cls, remote_path: str) -> "AuthKey":
        """A key file that already sits on the router (tailscale reads it there)."""
        return cls(remote_path=remote_path, source=f"remote file {remote_path}")

    def cli_value(self) -> str:
        """What follows --auth-key=: a file: reference, never the key itself."""
        return f"file:{self.remote_path}" if self.remote_path else "file:/dev/stdin"

    def stdin(self) -> SecretStdin | None:
        """A fresh stdin buffer carrying the key (None when tailscale reads a remote file)."""
        return SecretStdin(self._value + "\n") if self._value is not None else None

    def __repr__(self) -> str:
        return f"AuthKey(<hidden>, {self.source})"

    __str__ = __repr__
