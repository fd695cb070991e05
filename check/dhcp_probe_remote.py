"""Runs ON a host in the site's LAN (the router, over SSH): one DHCP exchange that takes no lease.

Sent as a script on stdin (`python3 - IFACE SRC_IP WAIT`), standard library only.
It broadcasts a DHCPDISCOVER (never followed by a REQUEST, so the server
commits no lease) and a DHCPINFORM (ciaddr = SRC_IP: asks for configuration
only), both asking for options 1, 3, 51, 58, 59, 121 and 249, and captures the
server's answers with a packet socket (no UDP port 68 needed, so a DHCP client
running on the host is not disturbed). Prints one JSON object: the raw
BOOTP payloads of the answers, in hex; parsing and judging happen on the
checker's side (check.dhcp), where they are unit-tested.
"""

import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
COOKIE = b"\x63\x82\x53\x63"
ASK = bytes([1, 3, 51, 58, 59, 121, 249])


def request(kind: int, xid: bytes, chaddr: bytes, ciaddr: bytes) -> bytes:
    flags = 0x8000 if kind == 1 else 0  # DISCOVER: ask for a broadcast answer (we hold no address)
    head = struct.pack("!BBBB4sHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, flags, ciaddr,
                       bytes(4), bytes(4), bytes(4), chaddr.ljust(16, b"\0"), b"", b"")
    opts = bytes([53, 1, kind, 55, len(ASK)]) + ASK + bytes([61, 7, 1]) + chaddr + b"\xff"
    return head + COOKIE + opts


def main() -> None:
    iface, src, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(f"/sys/class/net/{iface}/address") as f:
        chaddr = bytes.fromhex(f.read().strip().replace(":", ""))
    xids = {"discover": os.urandom(4), "inform": os.urandom(4)}
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    cap.bind((iface, ETH_P_IP))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    try:
        out.bind((src, 68))
    except OSError:  # a DHCP client holds port 68: any port will do, answers are captured below
        out.bind((src, 0))
    ciaddr = socket.inet_aton(src)
    out.sendto(request(1, xids["discover"], chaddr, bytes(4)), ("255.255.255.255", 67))
    out.sendto(request(8, xids["inform"], chaddr, ciaddr), ("255.255.255.255", 67))
    found = {}
    deadline = time.monotonic() + wait
    while len(found) < len(xids):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([cap], [], [], left)[0]:
            break
        pkt = cap.recv(65535)
        if len(pkt) < 28 or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        dport = struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0]
        payload = pkt[ihl + 8:]
        if dport != 68 or len(payload) < 240 or payload[0] != 2:
            continue
        for name, xid in xids.items():
            if payload[4:8] == xid and name not in found:
                found[name] = {"from": socket.inet_ntoa(pkt[12:16]), "hex": payload.hex()}
    print(json.dumps({"interface": iface, "chaddr": chaddr.hex(), **found}))


main()
