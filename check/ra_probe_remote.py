"""Runs ON the subnet router (over SSH): the router advertisement it sends on its LAN.

Sent as a script on stdin (`python3 - IFACE WAIT`), standard library only. It listens, for
up to WAIT seconds, with a packet socket of every protocol (only those see the host's own
outgoing frames) and keeps the first router advertisement going out of IFACE. It sends
nothing: radvd answers no solicitation from its own host, so the wait is one unsolicited
interval (operations/radvd.py keeps that short). Prints one JSON object with the raw ICMPv6
message in hex; parsing and judging happen on the checker's side (check.ra), unit-tested.
"""

import json
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ICMPV6 = 58
ROUTER_ADVERTISEMENT = 134


def main() -> None:
    iface, wait = sys.argv[1], float(sys.argv[2])
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind((iface, ETH_P_ALL))
    seen = []
    deadline = time.monotonic() + wait
    while not seen and time.monotonic() < deadline:
        ready, _, _ = select.select([cap], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        frame, addr = cap.recvfrom(65535)
        ip = frame[14:]
        if addr[2] != PACKET_OUTGOING or frame[12:14] != b"\x86\xdd" or len(ip) < 48 \
                or ip[6] != ICMPV6 or ip[40] != ROUTER_ADVERTISEMENT:
            continue
        seen.append({"src": socket.inet_ntop(socket.AF_INET6, ip[8:24]), "icmp": ip[40:].hex()})
    print(json.dumps({"interface": iface, "advertisements": seen}))


if __name__ == "__main__":
    main()
