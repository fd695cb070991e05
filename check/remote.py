"""Run read-only commands on a router over the same SSH settings the deploy uses.

One paramiko connection per router (tunnel.open_transport reads the site
file's [ssh] config_file, so the lab's ProxyCommand works as for pyinfra);
each command is one exec channel with a deadline, so a hung router costs
seconds, not the whole check.
"""

from __future__ import annotations

from dataclasses import dataclass

import paramiko

from sites.model import SshSettings
from tunnel import TunnelError, no_delay, open_transport


class RemoteError(Exception):
    """The router could not be reached or a command did not finish (one line)."""


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


class Router:
    """An open SSH connection to one router."""

    def __init__(self, target: str, ssh: SshSettings, timeout: float = 10.0) -> None:
        self.target = target
        try:
            self.client = open_transport(target, ssh.config_file, ssh.key_file, timeout=timeout)
        except TunnelError as exc:
            raise RemoteError(" ".join(str(exc).split())) from None
        no_delay(getattr(self.client.get_transport(), "sock", None))  # no Nagle delay per command

    def run(self, command: str, stdin: str | None = None, timeout: float = 15.0) -> Result:
        try:
            chan = self.client.get_transport().open_session(timeout=timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode())
                chan.shutdown_write()
            out, err = chan.makefile("rb").read(), chan.makefile_stderr("rb").read()
            rc = chan.recv_exit_status()
        except TimeoutError:
            raise RemoteError(f"{self.target}: command did not finish within {timeout:g} s") from None
        except (paramiko.SSHException, OSError) as exc:
            raise RemoteError(f"{self.target}: {type(exc).__name__}: {exc}") from None
        return Result(rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        self.client.close()
