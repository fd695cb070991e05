"""Headscale's config for a closed network: embedded DERP only, no internet DERP map, no logtail.

One renderer for the lab's control host, the control-plane tests' own Headscale and the
Vagrant labs (the Vagrantfile reads it from `python -m lab.vagrant render`; the lean
layout's control namespace calls it), so all run the same settings.
"""

from __future__ import annotations


def render_config(*, server_url: str, listen_port: int, address: str, state_dir: str, unix_socket: str,
                  stun_listen: str = "0.0.0.0", region_code: str = "lab",
                  region_name: str = "s2s lab embedded DERP") -> str:
    """config.yaml text; `address` is the IPv4 the embedded DERP region advertises."""
    return f"""\
server_url: {server_url}
listen_addr: 0.0.0.0:{listen_port}
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
grpc_allow_insecure: false
disable_check_updates: true
noise:
  private_key_path: {state_dir}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: "{region_code}"
    region_name: "{region_name}"
    verify_clients: true
    stun_listen_addr: "{stun_listen}:3478"
    private_key_path: {state_dir}/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: {address}
  urls: []
  paths: []
  auto_update_enabled: false
database:
  type: sqlite
  sqlite:
    path: {state_dir}/db.sqlite
    write_ahead_log: true
log:
  level: info
  format: text
policy:
  mode: database
dns:
  magic_dns: false
  override_local_dns: false
  base_domain: lab.invalid
  nameservers:
    global: []
unix_socket: {unix_socket}
unix_socket_permission: "0770"
logtail:
  enabled: false
taildrop:
  enabled: false
"""
