"""Every validation rule of the site file: one line naming file, key and value; exit 2 from the CLI."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork

from sites import SiteFileError, load_sites

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[sites.a]
subnet = "192.0.2.0/24"
router = "192.0.2.2"
gateway = "192.0.2.1"
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(textwrap.dedent(text))
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(SiteFileError) as info:
        load_sites(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "sites.toml") + ": ")
    return message


def test_good_file_loads_with_defaults(tmp_path):
    model = load_sites(write(tmp_path, GOOD))
    a, b = model.sites["a"], model.sites["b"]
    assert a.subnet == IPNetwork("192.0.2.0/24") and a.next_hop == IPAddress("192.0.2.2")
    assert a.gateway == IPAddress("192.0.2.1")
    assert b.gateway == b.next_hop  # gateway defaults to router
    assert b.routers[0].ssh == "172.16.100.2"  # ssh defaults to router
    assert a.kea == () and model.tailnet is None
    assert list(model.sites) == ["a", "b"]


@pytest.mark.parametrize(
    "text,host,user,port,name",
    [
        ("a-router", "a-router", None, None, "a-router"),
        ("root@a-router", "a-router", "root", None, "a-router"),
        ("admin@a-router:2222", "a-router", "admin", 2222, "a-router:2222"),
        ("root@2001:db8::2", "2001:db8::2", "root", None, "2001:db8::2"),
        ("root@[2001:db8::2]:2222", "2001:db8::2", "root", 2222, "[2001:db8::2]:2222"),
    ],
)
def test_ssh_target_is_split_in_one_place(text, host, user, port, name):
    from sites import SshTarget

    target = SshTarget.parse(text)
    assert (target.host, target.user, target.port, target.name) == (host, user, port, name)


def test_example_file_is_valid():
    model = load_sites(REPO / "sites.example.toml")
    assert model.sites["b"].kea[0].subnet_id == 1
    assert model.sites["b"].kea[0].password_file == REPO / "secrets/kea-b"
    assert model.tailnet.backend == "headscale"


def site_b(extra: str = "") -> str:
    return f'[sites.b]\nsubnet = "172.16.100.0/24"\nrouter = "172.16.100.2"\n{extra}'


@pytest.mark.parametrize(
    "site_a,key,value",
    [
        ('subnet = "192.0.2.0/33"\nrouter = "192.0.2.2"', "sites.a.subnet", "192.0.2.0/33"),
        ('subnet = "192.0.2.0"\nrouter = "192.0.2.2"', "sites.a.subnet", "192.0.2.0"),
        ('subnet = "192.0.2.1/24"\nrouter = "192.0.2.2"', "sites.a.subnet", "192.0.2.1/24"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.300"', "sites.a.router", "192.0.2.300"),
        ('subnet = "192.0.2.0/24"\nrouter = "198.51.100.2"', "sites.a.router", "198.51.100.2"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.0"', "sites.a.router", "192.0.2.0"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.255"', "sites.a.router", "192.0.2.255"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\ngateway = "192.0.3.1"', "sites.a.gateway", "192.0.3.1"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\ngateway = "192.0.2.255"', "sites.a.gateway", "192.0.2.255"),
        ('subnet = "100.64.1.0/24"\nrouter = "100.64.1.2"', "sites.a.subnet", "100.64.1.0/24"),
        ('subnet = "100.0.0.0/8"\nrouter = "100.0.0.2"', "sites.a.subnet", "100.0.0.0/8"),
        ('subnet = "2001:db8::/64"\nrouter = "2001:db8::2"', "sites.a.subnet", "2001:db8::/64"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nroutes = ["10.0.0.1/8"]', "sites.a.routes[0]", "10.0.0.1/8"),
        (
            'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nroutes = ["100.100.0.0/16"]',
            "sites.a.routes[0]",
            "100.100.0.0/16",
        ),
        (
            'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nroutes = ["192.0.2.128/25"]',
            "sites.a.routes[0]",
            "192.0.2.128/25",
        ),
        (
            'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nroutes = ["10.0.0.0/8", "10.1.0.0/16"]',
            "sites.a.routes[1]",
            "10.1.0.0/16",
        ),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nroutes = "10.0.0.0/8"', "sites.a.routes", "10.0.0.0/8"),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nrouter_typo = "x"', "sites.a.router_typo", "x"),
        ('subnet = 24\nrouter = "192.0.2.2"', "sites.a.subnet", 24),
        (
            'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nssh = "root@a-router:ssh"',
            "sites.a.ssh",
            "root@a-router:ssh",
        ),
        ('subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nssh = "root@a router"', "sites.a.ssh", "root@a router"),
    ],
)
def test_bad_site_values_are_named(tmp_path, site_a, key, value):
    message = error_for(tmp_path, f"[sites.a]\n{site_a}\n{site_b()}")
    assert f": {key}: " in message
    assert repr(value) in message


@pytest.mark.parametrize(
    "site_a,key",
    [
        ('router = "192.0.2.2"', "sites.a.subnet"),
        ('subnet = "192.0.2.0/24"', "sites.a.router"),
    ],
)
def test_missing_required_keys(tmp_path, site_a, key):
    message = error_for(tmp_path, f"[sites.a]\n{site_a}\n{site_b()}")
    assert f": {key}: missing required key" in message


def test_overlapping_subnets_between_sites(tmp_path):
    text = '[sites.a]\nsubnet = "172.16.0.0/16"\nrouter = "172.16.0.2"\n' + site_b()
    message = error_for(tmp_path, text)
    assert "overlaps" in message and "172.16" in message


def test_extra_route_overlapping_another_site(tmp_path):
    text = '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nroutes = ["172.16.0.0/12"]\n' + site_b()
    message = error_for(tmp_path, text)
    assert "sites.b.subnet" in message and "sites.a.routes[0]" in message


def test_fewer_than_two_sites(tmp_path):
    message = error_for(tmp_path, '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n')
    assert ": sites: " in message and "at least two" in message and "['a']" in message


def test_no_sites_at_all(tmp_path):
    assert ": sites: missing required key" in error_for(tmp_path, "[dhcp]\n")


def test_empty_site_name(tmp_path):
    text = '[sites.""]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n' + site_b()
    assert "site names" in error_for(tmp_path, text)


def test_duplicate_site_name_is_a_toml_error(tmp_path):
    text = GOOD + '[sites.a]\nsubnet = "198.51.100.0/24"\nrouter = "198.51.100.2"\n'
    assert "not valid TOML" in error_for(tmp_path, text)


def test_unknown_top_level_table(tmp_path):
    assert ": tailnett: unknown key" in error_for(tmp_path, GOOD + "[tailnett]\n")


@pytest.mark.parametrize(
    "table,key,value",
    [
        ('[sites.a.kea]\nurl = "ftp://x"', "sites.a.kea.url", "ftp://x"),
        ('[sites.a.kea]\nurl = "http://127.0.0.1:8000"\nsubnet_id = 0', "sites.a.kea.subnet_id", 0),
        ('[sites.a.kea]\nurl = "http://127.0.0.1:8000"\npasword_env = "X"', "sites.a.kea.pasword_env", "X"),
    ],
)
def test_bad_kea_table(tmp_path, table, key, value):
    text = '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n' + table + "\n" + site_b()
    message = error_for(tmp_path, text)
    assert f": {key}: " in message and repr(value) in message


@pytest.mark.parametrize(
    "tailnet,key",
    [
        ('backend = "zerotier"\nurl = "http://x"', "tailnet.backend"),
        ('backend = "headscale"', "tailnet.url"),
        ('url = "http://x"\ntag = "subnet-router"', "tailnet.tag"),
        ('url = "http://x"\npolicy_mode = "file"', "tailnet.policy_file"),
        ('url = "http://x"\npolicy_syntax = "grant"', "tailnet.policy_syntax"),
    ],
)
def test_bad_tailnet_table(tmp_path, tailnet, key):
    assert f": {key}: " in error_for(tmp_path, GOOD + f"[tailnet]\n{tailnet}\n")


def test_tailscale_backend_defaults_to_the_public_api(tmp_path):
    model = load_sites(write(tmp_path, GOOD + '[tailnet]\nbackend = "tailscale"\ntailnet = "example.com"\n'))
    assert model.tailnet.url == "https://api.tailscale.com/api/v2"
    assert model.tailnet.policy_mode == "api"
    assert model.tailnet.policy_syntax == "auto"


@pytest.mark.parametrize("syntax", ["auto", "grants", "acls"])
def test_policy_syntax(tmp_path, syntax):
    model = load_sites(write(tmp_path, GOOD + f'[tailnet]\nurl = "http://x"\npolicy_syntax = "{syntax}"\n'))
    assert model.tailnet.policy_syntax == syntax


def test_secrets_come_from_env_and_files_and_stay_out_of_reprs(tmp_path, monkeypatch):
    (tmp_path / "kea-pass").write_text("s3cret-file\n")
    text = GOOD.replace(
        'gateway = "192.0.2.1"',
        'gateway = "192.0.2.1"\n[sites.a.kea]\nurl = "http://127.0.0.1:8000"\n'
        'user = "kea-api"\npassword_file = "kea-pass"',
    )
    text += '[tailnet]\nurl = "http://x"\napi_key_env = "S2S_TEST_KEY"\n'
    monkeypatch.setenv("S2S_TEST_KEY", "hs-secret-key")
    model = load_sites(write(tmp_path, text))
    assert model.sites["a"].kea[0].password() == "s3cret-file"
    assert model.tailnet.api_key() == "hs-secret-key"
    assert "s3cret" not in repr(model) and "hs-secret" not in repr(model)


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = write(tmp_path, '[sites.a]\nsubnet = "192.0.2.0/24"\nrouter = "192.0.2.300"\n' + site_b())
    result = subprocess.run(
        [sys.executable, "-m", "sites", "--sites", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: sites.a.router: not a valid IP address (got '192.0.2.300')"
    ]
    assert "Traceback" not in result.stderr


def test_sites_env_var_and_option_precedence(tmp_path, monkeypatch):
    from sites.cli import resolve_sites_path

    monkeypatch.setenv("SITES", "/env/sites.toml")
    assert str(resolve_sites_path(None)) == "/env/sites.toml"
    assert str(resolve_sites_path("/opt/sites.toml")) == "/opt/sites.toml"
    monkeypatch.delenv("SITES")
    assert str(resolve_sites_path(None)) == "sites.toml"


# -- [[sites.X.kea]]: an HA pair -------------------------------------------------------
HA = GOOD.replace(
    'gateway = "192.0.2.1"\n',
    '''gateway = "192.0.2.1"
[[sites.a.kea]]
url = "http://127.0.0.1:8000"
ssh = "root@kea-a1"
[[sites.a.kea]]
url = "http://127.0.0.1:8000"
ssh = "root@kea-a2"
subnet_id = 9
''',
)


def test_ha_pair_names_every_server(tmp_path):
    site = load_sites(write(tmp_path, HA)).sites["a"]
    assert site.kea and site.kea[0].ssh == "root@kea-a1"
    assert [k.ssh for k in site.kea] == ["root@kea-a1", "root@kea-a2"]
    assert site.kea[1].subnet_id == 9
    assert load_sites(write(tmp_path, GOOD)).sites["a"].kea == ()


def test_ha_pair_bad_input_is_one_line(tmp_path):
    same = HA.replace('ssh = "root@kea-a2"', 'ssh = "root@kea-a1"')
    assert "sites.a.kea[1].url: the same server as kea[0]" in error_for(tmp_path, same)
    assert "sites.a.kea[1].subnet_id: must be between" in error_for(
        tmp_path, HA.replace("subnet_id = 9", "subnet_id = 0")
    )
    assert "sites.a.kea[0].url: must be an http" in error_for(
        tmp_path, HA.replace('url = "http://127.0.0.1:8000"\nssh = "root@kea-a1"', 'url = "ftp://x"', 1)
    )


def test_ha_pair_is_one_push_group_per_server(tmp_path):
    from dhcp.plan import build_plan
    from dhcp.push import group_by_server

    groups = group_by_server(build_plan(load_sites(write(tmp_path, HA))))
    assert [(ep.ssh, [p.site.name for p in plans]) for ep, plans in groups] == [
        ("root@kea-a1", ["a"]),
        ("root@kea-a2", ["a"]),
    ]


AWS_A = 'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\n[sites.a.aws]\n'


def test_aws_site_loads(tmp_path):
    model = load_sites(
        write(
            tmp_path,
            "[sites.a]\n"
            + AWS_A[AWS_A.index("subnet") :]
            + textwrap.dedent("""
        region = "eu-central-1"
        route_tables = ["rtb-0a1b2c3d4e5f60718"]
        network_interface = "eni-0a1b2c3d4e5f60718"
        endpoint_url = "http://127.0.0.1:5000/"
        """)
            + site_b(),
        )
    )
    aws = model.sites["a"].aws
    assert (aws.region, aws.route_tables, aws.network_interface, aws.instance, aws.endpoint_url) == (
        "eu-central-1",
        ("rtb-0a1b2c3d4e5f60718",),
        "eni-0a1b2c3d4e5f60718",
        None,
        "http://127.0.0.1:5000",
    )
    assert model.sites["b"].aws is None


@pytest.mark.parametrize(
    "body,key,value",
    [
        ('route_tables = ["rtb-1"]\nnetwork_interface = "eni-1"', "sites.a.aws.region", None),
        (
            'region = "eu central"\nroute_tables = ["rtb-1"]\nnetwork_interface = "eni-1"',
            "sites.a.aws.region",
            "eu central",
        ),
        ('region = "eu-central-1"\nroute_tables = []\nnetwork_interface = "eni-1"', "sites.a.aws.route_tables", []),
        (
            'region = "eu-central-1"\nroute_tables = ["rt-1"]\nnetwork_interface = "eni-1"',
            "sites.a.aws.route_tables[0]",
            "rt-1",
        ),
        (
            'region = "eu-central-1"\nroute_tables = ["rtb-1", "rtb-1"]\nnetwork_interface = "eni-1"',
            "sites.a.aws.route_tables[1]",
            "rtb-1",
        ),
        ('region = "eu-central-1"\nroute_tables = ["rtb-1"]', "sites.a.aws.network_interface", None),
        (
            'region = "eu-central-1"\nroute_tables = ["rtb-1"]\nnetwork_interface = "eni-1"\ninstance = "i-1"',
            "sites.a.aws.network_interface",
            None,
        ),
        ('region = "eu-central-1"\nroute_tables = ["rtb-1"]\ninstance = "eni-1"', "sites.a.aws.instance", "eni-1"),
        (
            'region = "eu-central-1"\nroute_tables = ["rtb-1"]\ninstance = "i-1"\nendpoint_url = "ftp://x"',
            "sites.a.aws.endpoint_url",
            "ftp://x",
        ),
        (
            'region = "eu-central-1"\nroute_tables = ["rtb-1"]\ninstance = "i-1"\nsecret_key = "x"',
            "sites.a.aws.secret_key",
            "x",
        ),
    ],
)
def test_bad_aws_values_are_named(tmp_path, body, key, value):
    message = error_for(tmp_path, "[sites.a]\n" + AWS_A[AWS_A.index("subnet") :] + body + "\n" + site_b())
    assert f": {key}: " in message
    if value is not None:
        assert repr(value) in message


def test_one_route_table_serves_one_site(tmp_path):
    aws = '[sites.{0}.aws]\nregion = "eu-central-1"\nroute_tables = ["rtb-1"]\nnetwork_interface = "eni-{0}"\n'
    text = (
        "[sites.a]\n" + AWS_A[AWS_A.index("subnet") : AWS_A.index("[")] + aws.format("a") + site_b() + aws.format("b")
    )
    message = error_for(tmp_path, text)
    assert ": sites.b.aws.route_tables[0]: the same route table as sites.a.aws.route_tables[0] (got 'rtb-1')" in message


HOSTS_A = 'subnet = "192.0.2.0/24"\nrouter = "192.0.2.2"\nssh = "root@a-router"\n'


def test_static_hosts_load(tmp_path):
    model = load_sites(
        write(
            tmp_path,
            f"""
[sites.a]
{HOSTS_A}
[[sites.a.hosts]]
ssh = "root@a-nas"
manager = "ifupdown"
[[sites.a.hosts]]
ssh = "admin@a-vm:2222"
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
routes = ["10.8.0.0/16"]
""",
        )
    )
    a = model.sites["a"]
    assert [(h.ssh, h.manager) for h in a.hosts] == [("root@a-nas", "ifupdown"), ("admin@a-vm:2222", None)]
    assert model.sites["b"].hosts == ()
    assert [str(p) for p in model.remote_prefixes(a)] == ["100.64.0.0/10", "172.16.100.0/24", "10.8.0.0/16"]


@pytest.mark.parametrize(
    "hosts, key, value",
    [
        ('[[sites.a.hosts]]\nmanager = "networkd"', "sites.a.hosts[0].ssh", None),
        ('[[sites.a.hosts]]\nssh = "a-nas"\nmanager = "systemd"', "sites.a.hosts[0].manager", "systemd"),
        ('[[sites.a.hosts]]\nssh = "a-nas"\nmanger = "netplan"', "sites.a.hosts[0].manger", "netplan"),
        ('[[sites.a.hosts]]\nssh = "a nas"', "sites.a.hosts[0].ssh", "a nas"),
        ('[[sites.a.hosts]]\nssh = "root@a-router"', "sites.a.hosts[0].ssh", "root@a-router"),
        ('[[sites.a.hosts]]\nssh = "a-nas"\n[[sites.a.hosts]]\nssh = "a-nas"', "sites.a.hosts[1].ssh", "a-nas"),
        ('hosts = "a-nas"', "sites.a.hosts", "a-nas"),
    ],
)
def test_bad_static_hosts_are_one_line(tmp_path, hosts, key, value):
    message = error_for(
        tmp_path,
        f"""
[sites.a]
{HOSTS_A}
{hosts}
[sites.b]
subnet = "172.16.100.0/24"
router = "172.16.100.2"
""",
    )
    assert f": {key}: " in message
    if value is not None:
        assert f"(got {value!r})" in message
