"""Install Tailscale from its apt repository, join once with `tailscale up`, then `tailscale set`.

`tailscale up` refuses partial changes and a bare later `up` wipes
AdvertiseRoutes, so `up` runs only to join (or when the control URL or tags
change, which need a new login); every other change is a `tailscale set` of
just the differing prefs, decided from the live TailscalePrefs fact.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from pyinfra import host
from pyinfra.api import OperationValueError, StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.facts.server import OsRelease
from pyinfra.operations import apt

from operations import batch, owned, parse
from operations.facts import TailscalePrefs, TailscaleStatus
from operations.secret import AuthKey
from operations.util import log_changes

DEFAULT_REPO = "https://pkgs.tailscale.com/stable/debian"
KEYRING = "/usr/share/keyrings/tailscale-archive-keyring"
NO_LOGS_DROPIN = "/etc/systemd/system/tailscaled.service.d/s2s-no-logs.conf"


def _armored(key_content: bytes | None, key_url: str | None) -> bool:
    if key_content is not None:
        return key_content.lstrip().startswith(b"-----BEGIN PGP")
    return bool(key_url and key_url.endswith(".asc"))


@operation()
def install(
    repo_url: str = DEFAULT_REPO,
    key_url: str | None = None,
    key_content: bytes | str | None = None,
    version: str | None = None,
    suite: str | None = None,
    component: str = "main",
    no_logs_no_support: bool = False,
    packages: Iterable[str] = (),
):
    """
    Install tailscale from an apt repository signed by its own keyring; tailscaled enabled and running.

    + repo_url: repository base (Tailscale's or a mirror with the same layout)
    + key_url: signing key URL, fetched on the router by apt-helper when the keyring
      is missing (default: REPO/SUITE.noarmor.gpg, Tailscale's layout)
    + key_content: the key itself (binary or ASCII-armored); managed exactly (operations.owned.put)
    + version: pin, e.g. "1.100.0" (apt's tailscale=VERSION)
    + suite: Debian codename (default: VERSION_CODENAME of /etc/os-release)
    + no_logs_no_support: run tailscaled with TS_NO_LOGS_NO_SUPPORT=true (a drop-in)
    + packages: other Debian packages to install in the same apt run
    """
    if suite is None:
        suite = host.get_fact(OsRelease).get("version_codename")
        if not suite:
            raise OperationValueError("cannot tell the Debian suite: /etc/os-release has no VERSION_CODENAME")
    if isinstance(key_content, str):
        key_content = key_content.encode()
    if key_content is None and key_url is None:
        key_url = f"{repo_url.rstrip('/')}/{suite}.noarmor.gpg"
    keyring = KEYRING + (".asc" if _armored(key_content, key_url) else ".gpg")

    keyring_now, dropin_now, unit_now = batch.read(
        (owned.OwnedFile, {"path": keyring}), (owned.OwnedFile, {"path": NO_LOGS_DROPIN}),
        (owned.UnitState, {"unit": "tailscaled.service"}))
    repo_cmds: list = []
    if key_content is not None:
        repo_cmds += list(owned.put(keyring, key_content, mode="644", current=keyring_now))
    elif not host.get_fact(File, path=keyring):
        tmp = shlex.quote(keyring + ".part")
        repo_cmds.append(
            f"/usr/lib/apt/apt-helper download-file {shlex.quote(key_url)} {tmp} "
            f"&& chmod 644 {tmp} && mv {tmp} {shlex.quote(keyring)}"
        )
    repo_cmds += list(
        apt.sources_file._inner(
            filename="tailscale", uris=[repo_url], suites=[suite], components=[component], signed_by=keyring
        )
    )

    dropin_cmds: list = []
    if no_logs_no_support:
        dropin = "# Managed by s2s: keep tailscaled off Tailscale's log servers.\n[Service]\nEnvironment=TS_NO_LOGS_NO_SUPPORT=true\n"
        dropin_cmds = list(owned.put(NO_LOGS_DROPIN, dropin, mode="644", current=dropin_now))

    package = f"tailscale={version}" if version else "tailscale"
    pkg_cmds = list(apt.packages._inner(packages=[package, *packages], no_recommends=True))

    yield from repo_cmds
    # The drop-in goes in before the package so the postinst's first start already has it.
    yield from dropin_cmds
    if dropin_cmds:
        yield "systemctl daemon-reload"
    if repo_cmds or pkg_cmds:
        yield "apt-get update"
    yield from pkg_cmds
    svc_cmds = list(owned.unit_running("tailscaled.service", status=unit_now))
    if dropin_cmds and not pkg_cmds and not svc_cmds:
        yield "systemctl restart tailscaled.service"
    yield from svc_cmds


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _flag(name: str, value: str) -> str:
    return f"--{name}={shlex.quote(value)}" if value else f"--{name}="


@operation()
def configure(
    routes: Iterable[str],
    accept_routes: bool = True,
    snat: bool = False,
    login_server: str | None = None,
    tags: Iterable[str] = (),
    auth_key: AuthKey | None = None,
    accept_dns: bool = False,
    hostname: str | None = None,
    timeout: str = "120s",
    socket: str | None = None,
):
    """
    Join the tailnet once (`tailscale up`), then keep prefs as declared with `tailscale set`.

    + routes: prefixes to advertise (the site subnet and its extra routes)
    + accept_routes: --accept-routes (other sites' subnets)
    + snat: --snat-subnet-routes (False for site-to-site: hosts see real sources)
    + login_server: control server URL (Headscale); None keeps Tailscale's default
    + tags: --advertise-tags (the router tag)
    + auth_key: AuthKey; passed as --auth-key=file:/dev/stdin, never on a command line
    + accept_dns: --accept-dns (False: a router keeps its own resolver)
    + timeout: how long `up` waits for Running
    + socket: tailscaled socket (tests)

    `up` runs only when the node is not logged in, or when the control URL or the
    tags differ (both need a new login, so the auth key is required then too).
    """
    want_routes = parse.normalise_prefixes(list(routes))
    want_tags = parse.normalise_tags(list(tags))
    prefs, status = batch.read((TailscalePrefs, {"socket": socket}), (TailscaleStatus, {"socket": socket}))

    joined = bool(status and status.joined and prefs and not prefs.logged_out)
    server_changed = bool(
        prefs and login_server and prefs.control_url.rstrip("/") != login_server.rstrip("/")
    )
    tags_changed = bool(prefs and prefs.advertise_tags != want_tags)

    desired = {
        "ControlURL": login_server or (prefs.control_url if prefs else "(default)"),
        "AdvertiseRoutes": want_routes,
        "RouteAll": accept_routes,
        "NoSNAT": not snat,
        "CorpDNS": accept_dns,
        "AdvertiseTags": want_tags,
    }
    if hostname:
        desired["Hostname"] = hostname
    current = {
        "ControlURL": prefs.control_url if prefs else None,
        "AdvertiseRoutes": prefs.advertise_routes if prefs else None,
        "RouteAll": prefs.route_all if prefs else None,
        "NoSNAT": prefs.no_snat if prefs else None,
        "CorpDNS": prefs.corp_dns if prefs else None,
        "AdvertiseTags": prefs.advertise_tags if prefs else None,
        "Hostname": prefs.hostname if prefs else None,
    }
    changes = [(k, current[k], v) for k, v in desired.items() if current[k] != v]

    cli = ["tailscale"] + ([f"--socket={shlex.quote(socket)}"] if socket else [])
    if not joined or server_changed or tags_changed:
        if auth_key is None:
            raise OperationValueError(
                "tailscale needs an auth key to join (or to change control server/tags); none was given"
            )
        why = "not joined" if not joined else ("control server changed" if server_changed else "tags changed")
        log_changes(f"tailscale prefs ({why}: tailscale up)", changes or [("BackendState", status.backend_state if status else None, "Running")])
        args = cli + ["up", "--reset"]
        if login_server:
            args.append(_flag("login-server", login_server))
        args += [
            _flag("advertise-routes", ",".join(want_routes)),
            f"--accept-routes={_bool(accept_routes)}",
            f"--snat-subnet-routes={_bool(snat)}",
            f"--accept-dns={_bool(accept_dns)}",
            _flag("advertise-tags", ",".join(want_tags)),
        ]
        if hostname:
            args.append(_flag("hostname", hostname))
        if joined and server_changed:
            args.append("--force-reauth")
        args += [f"--auth-key={auth_key.cli_value()}", f"--timeout={shlex.quote(timeout)}"]
        stdin = auth_key.stdin()
        yield StringCommand(*args, **({"_stdin": stdin} if stdin is not None else {}))
        return

    set_args: list[str] = []
    if prefs.advertise_routes != want_routes:
        set_args.append(_flag("advertise-routes", ",".join(want_routes)))
    if prefs.route_all != accept_routes:
        set_args.append(f"--accept-routes={_bool(accept_routes)}")
    if prefs.no_snat == snat:
        set_args.append(f"--snat-subnet-routes={_bool(snat)}")
    if prefs.corp_dns != accept_dns:
        set_args.append(f"--accept-dns={_bool(accept_dns)}")
    if hostname and prefs.hostname != hostname:
        set_args.append(_flag("hostname", hostname))
    if not set_args:
        host.noop("tailscale prefs are as declared")
        return
    log_changes("tailscale prefs (tailscale set)", changes)
    yield StringCommand(*cli, "set", *set_args)
