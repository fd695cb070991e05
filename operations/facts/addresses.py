"""Interface addresses, read from iproute2's JSON output (`ip -j addr`).

One parser for every reader: the VRRP step (which interface holds the router's
LAN address) and the live check (each interface's addresses).
"""

from __future__ import annotations

from pyinfra.api import FactBase

from operations.facts._parsing import ParseError, json_list, parsed


def parse_ip_addr_json(text: str) -> dict[str, list[str]]:
    """`ip -j addr show` -> interface name -> its addresses (without prefix lengths), in order."""
    links = json_list(text, "`ip -j addr`")
    found: dict[str, list[str]] = {}
    for link in links:
        if not isinstance(link, dict) or "ifname" not in link:
            raise ParseError(f"not an `ip -j addr` link: {link!r}")
        found[link["ifname"]] = [a["local"] for a in link.get("addr_info", []) if "local" in a]
    return found


def interface_of(addresses: dict[str, list[str]], address: str) -> str | None:
    """The interface holding `address` (None: no interface has it)."""
    return next((name for name, held in addresses.items() if address in held), None)


class InterfaceAddresses(FactBase[dict]):
    """Interface -> its addresses of one family (4 or 6)."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self, version: int = 4) -> str:
        return f"ip -j -{version} addr show"

    @parsed
    def process(self, output: list[str]) -> dict[str, list[str]]:
        return parse_ip_addr_json("\n".join(output))


class InterfaceOfAddress(FactBase[str | None]):
    """Which interface holds an IPv4 address (the LAN interface VRRP runs on)."""

    def command(self, address: str) -> str:
        self.address = address
        return InterfaceAddresses().command(4)

    @parsed
    def process(self, output: list[str]) -> str | None:
        return interface_of(parse_ip_addr_json("\n".join(output)), self.address)
