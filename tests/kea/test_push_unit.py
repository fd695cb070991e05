"""Push decisions that happen before any Kea is contacted (no Kea needed)."""

from __future__ import annotations

import io
from pathlib import Path

from dhcp.plan import build_plan
from dhcp.push import group_by_server, run
from sites import load_sites
from tests.support import free_port


def plans_for(tmp_path: Path, text: str):
    path = tmp_path / "sites.toml"
    path.write_text(text)
    return build_plan(load_sites(path))


def never(endpoint):
    raise AssertionError(f"contacted {endpoint!r}")


def test_sites_needing_no_push_are_reported_and_skipped(tmp_path):
    plans = plans_for(tmp_path, f"""
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.1"
[sites.a.kea]
url = "http://127.0.0.1:{free_port()}/"
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
""")
    out = io.StringIO()
    assert run(plans, factory=never, out=out, err=io.StringIO()) == 0
    assert "site a: skipped: router is the LAN's default gateway" in out.getvalue()
    assert "site b: no kea table, skipped" in out.getvalue()


def test_sites_on_one_server_are_one_group(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/"
    plans = plans_for(tmp_path, f"""
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
gateway = "192.0.2.1"
kea = {{ url = "{url}" }}
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
gateway = "172.16.100.1"
kea = {{ url = "{url.rstrip('/')}" }}
""")
    groups = group_by_server(plans)
    assert [[p.site.name for p in ps] for _, ps in groups] == [["a", "b"]]


def test_missing_password_env_is_exit_2_before_contact(tmp_path, monkeypatch):
    monkeypatch.delenv("S2S_KEA_TEST_PW", raising=False)
    plans = plans_for(tmp_path, f"""
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
gateway = "192.0.2.1"
kea = {{ url = "http://127.0.0.1:{free_port()}/", user = "kea-api", password_env = "S2S_KEA_TEST_PW" }}
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
""")
    err = io.StringIO()
    assert run(plans, err=err, out=io.StringIO()) == 2
    assert "S2S_KEA_TEST_PW is not set" in err.getvalue()


def test_kea_over_unreachable_ssh_fails_before_any_kea_call(tmp_path):
    """kea.ssh goes through an SSH forward; an SSH host that refuses is exit 1, nothing contacted."""
    import socket
    from contextlib import ExitStack

    from dhcp.kea.connect import tunnelled_factory
    from sites import load_sites

    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    (tmp_path / "ssh_config").write_text(f"Host kea-a\n  HostName 127.0.0.1\n  Port {closed_port}\n")
    site_file = tmp_path / "sites.toml"
    site_file.write_text("""
[ssh]
config_file = "ssh_config"
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
gateway = "192.0.2.1"
kea = { url = "http://127.0.0.1:8000/", ssh = "root@kea-a" }
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
""")
    model = load_sites(site_file)
    err = io.StringIO()
    with ExitStack() as stack:
        code = run(build_plan(model), err=err, out=io.StringIO(),
                   factory=tunnelled_factory(model.ssh, stack))
    assert code == 1
    assert "via ssh" in err.getvalue() and "nothing was contacted" in err.getvalue()
