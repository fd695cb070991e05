"""Turn a site's `kea` table into a transport: the one place that picks how to reach Kea.

Kept apart so a new way in (an SSH tunnel to a Control Agent on the Kea host's
loopback, for the router-deploy work) plugs in here without touching the push.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack

import paramiko

from dhcp.kea.transport import (
    ControlAgentTransport,
    DirectHttpTransport,
    KeaError,
    KeaTransport,
    KeaUnreachable,
    redact_url,
)
from sites.model import KeaEndpoint, SshSettings
from tunnel import TunnelError, forwarded_url

TransportFactory = Callable[[KeaEndpoint], KeaTransport]


class EndpointNotSupported(KeaError):
    """The site file asks for a way to reach Kea that this version cannot do yet."""


def transport_for(endpoint: KeaEndpoint, url: str | None = None) -> KeaTransport:
    """A transport for one Kea server, at `url` when a tunnel stands in for endpoint.url.

    Raises sites.model.SecretError when the password's env var/file is missing (bad
    input) and EndpointNotSupported for an `ssh` endpoint without a tunnel."""
    if endpoint.ssh and url is None:
        raise EndpointNotSupported(
            f"kea.ssh = {endpoint.ssh!r}: needs a tunnel; use tunnelled_factory()")
    password = endpoint.password()
    target = url or endpoint.url
    cls = DirectHttpTransport if endpoint.api == "direct" else ControlAgentTransport
    transport = cls(target, endpoint.user, password)
    if endpoint.ssh:
        transport.label = f"Kea at {redact_url(endpoint.url)} via ssh {endpoint.ssh}"
    return transport


def tunnelled_factory(ssh: SshSettings, stack: ExitStack,
                      transports: Mapping[str, paramiko.Transport] | None = None) -> TransportFactory:
    """A factory that reaches `kea.ssh` endpoints through an SSH port forward.

    `transports` maps SSH targets to open paramiko transports (the deploy passes the
    connection pyinfra already holds); other targets get a connection of their own,
    closed when `stack` closes.
    """

    def factory(endpoint: KeaEndpoint) -> KeaTransport:
        if not endpoint.ssh:
            return transport_for(endpoint)
        password_check = endpoint.password()  # bad secrets fail before any connection
        del password_check
        try:
            url = stack.enter_context(forwarded_url(
                endpoint.url, endpoint.ssh, ssh.config_file, ssh.key_file,
                transport=(transports or {}).get(endpoint.ssh)))
        except TunnelError as exc:
            raise KeaUnreachable(f"Kea at {redact_url(endpoint.url)} via ssh: {exc}") from None
        return transport_for(endpoint, url)

    return factory
