"""Install Tailscale from its apt repository, join once with `tailscale up`, then `tailscale set`.

`tailscale up` with flags refuses partial changes (or, with --reset, puts every
pref it is not given back to its default), so `up --reset` runs only to join (or
when the control URL or tags change, which need a new login); after a
`tailscale down` a bare `up` (no flags: "bring it up unchanged"); every other change
is a `tailscale set` of just the differing prefs, decided from the live
TailscalePrefs fact. OWNED_PREFS is the one list of prefs this project owns:
the diff, the `up` flags and the `set` flags all come from it. Prefs not in it
are left alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationValueError, StringCommand, operation
from pyinfra.facts.apt import AptSources, AptSourcesFile
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import OsRelease
from pyinfra.operations import apt

import failpoint
from operations import batch, owned
from operations.facts import LivePrefs, TailscalePrefs, TailscaleStatus
from operations.facts.dpkg import DpkgInterrupted
from operations.facts.tailscale import NodeStatus, normalise_prefixes, normalise_tags
from operations.packages import apt_install, apt_update, dpkg_recover
from operations.secret import AuthKey
from operations.util import log_changes
from sites.model import Tailscale

TAILSCALE_REPOS = "https://pkgs.tailscale.com/stable"  # <ID>/ per distribution (debian, ubuntu)
DISTRIBUTIONS = ("debian", "ubuntu")  # what Tailscale's stable repository has a tree for
KEYRING = "/usr/share/keyrings/tailscale-archive-keyring"
NO_LOGS_DROPIN = "/etc/systemd/system/tailscaled.service.d/s2s-no-logs.conf"


def _armored(key_content: bytes | None, key_url: str | None) -> bool:
    if key_content is not None:
        return key_content.lstrip().startswith(b"-----BEGIN PGP")
    return bool(key_url and key_url.endswith(".asc"))


@dataclass(frozen=True)
class InstallSource:
    """Where tailscale comes from and how tailscaled runs: the one input of `install`.

    Built from the site file's [tailscale] table (`from_model`); a local key file
    is read here and uploaded, a key URL is fetched on the router.
    """

    repo_url: str | None = None  # default: Tailscale's tree for the router's distribution
    key_url: str | None = None  # default: REPO/SUITE.noarmor.gpg, Tailscale's layout
    key_content: bytes | None = None
    version: str | None = None  # apt pin, e.g. "1.100.0"
    suite: str | None = None  # default: VERSION_CODENAME of the router's /etc/os-release
    component: str = "main"
    no_logs_no_support: bool = False  # tailscaled with TS_NO_LOGS_NO_SUPPORT=true (a drop-in)

    @classmethod
    def from_model(cls, tailscale: Tailscale) -> InstallSource:
        key_content = Path(tailscale.apt_key_file).read_bytes() if tailscale.apt_key_file else None
        return cls(
            repo_url=tailscale.apt_repo,
            key_url=None if key_content else tailscale.apt_key_url,
            key_content=key_content,
            version=tailscale.version,
            suite=tailscale.apt_suite,
            component=tailscale.apt_component,
            no_logs_no_support=tailscale.no_logs_no_support,
        )

    def keyring(self, repo: str, suite: str) -> tuple[str, str | None]:
        """The keyring path on the router (.asc for an armored key) and the URL to fetch it from."""
        key_url = self.key_url
        if self.key_content is None and key_url is None:
            key_url = f"{repo.rstrip('/')}/{suite}.noarmor.gpg"
        return KEYRING + (".asc" if _armored(self.key_content, key_url) else ".gpg"), key_url

    def packages(self, extra: Iterable[str] = ()) -> list[str]:
        return [f"tailscale={self.version}" if self.version else "tailscale", *extra]


def install_facts(source: InstallSource, repo: str, suite: str) -> dict[str, batch.Fact]:
    """What `install` decides from (read in one batch)."""
    keyring, _ = source.keyring(repo, suite)
    return {
        "keyring": (owned.OwnedFile, {"path": keyring}),
        "dropin": (owned.OwnedFile, {"path": NO_LOGS_DROPIN}),
        "unit": (owned.UnitState, {"unit": "tailscaled.service"}),
        "sources": (AptSources, {}),
        "packages": (DebPackages, {}),
        "dpkg": (DpkgInterrupted, {}),
    }


def install_repo(source: InstallSource) -> tuple[str, str]:
    """The repository and suite: the given ones, else Tailscale's tree for the router's own
    /etc/os-release (ID debian or ubuntu, VERSION_CODENAME), so a Debian 13 or Ubuntu 24.04
    router gets its own release's packages, not Debian 12's."""
    release = {} if source.repo_url and source.suite else host.get_fact(OsRelease)
    repo = source.repo_url
    if not repo:
        distro = release.get("id") or ""
        if distro not in DISTRIBUTIONS:
            raise OperationValueError(
                f"cannot tell Tailscale's repository for /etc/os-release ID={distro!r}: "
                "set [tailscale] apt_repo and apt_suite"
            )
        repo = f"{TAILSCALE_REPOS}/{distro}"
    suite = source.suite or release.get("version_codename")
    if not suite:
        raise OperationValueError(
            "cannot tell the apt suite: /etc/os-release has no VERSION_CODENAME; set [tailscale] apt_suite"
        )
    return repo, suite


def _installed(wanted: list[str], packages: dict[str, list[str]]) -> bool:
    """Every package installed, at its pinned version where one is given (DebPackages' view)."""
    for item in wanted:
        name, _, version = item.partition("=")
        if name not in packages or (version and version not in packages[name]):
            return False
    return True


@operation()
def install(source: InstallSource = InstallSource(), packages: Iterable[str] = ()) -> Generator[Any, None, None]:
    """
    Install tailscale from an apt repository signed by its own keyring; tailscaled enabled and running.

    + source: InstallSource (repository, key, pinned version, suite, tailscaled without log upload)
    + packages: other Debian packages to install in the same apt run
    """
    repo, suite = install_repo(source)
    keyring, key_url = source.keyring(repo, suite)
    facts = batch.read(**install_facts(source, repo, suite))
    keyring_now, dropin_now, unit_now = facts["keyring"], facts["dropin"], facts["unit"]
    sources_now, packages_now, dpkg_now = facts["sources"], facts["packages"], facts["dpkg"]
    repo_cmds: list = []
    if source.key_content is not None:
        repo_cmds += list(owned.put(keyring, source.key_content, mode="644", current=keyring_now))
    elif keyring_now is None:
        tmp = shlex.quote(keyring + ".part")
        repo_cmds.append(
            f"/usr/lib/apt/apt-helper download-file {shlex.quote(key_url)} {tmp} "
            f"&& chmod 644 {tmp} && mv {tmp} {shlex.quote(keyring)}"
        )
    wanted_repos = AptSourcesFile(
        types=["deb"], uris=[repo], suites=[suite], components=[source.component], signed_by=[keyring]
    ).expand_to_repos()
    if not all(repo in (sources_now or []) for repo in wanted_repos):  # else apt.sources_file is a no-op
        repo_cmds += list(
            apt.sources_file._inner(
                filename="tailscale", uris=[repo], suites=[suite], components=[source.component], signed_by=keyring
            )
        )

    dropin_cmds: list = []
    if source.no_logs_no_support:
        dropin = ("# Managed by s2s: keep tailscaled off Tailscale's log servers.\n"
                  "[Service]\nEnvironment=TS_NO_LOGS_NO_SUPPORT=true\n")
        dropin_cmds = list(owned.put(NO_LOGS_DROPIN, dropin, mode="644", current=dropin_now))

    wanted = source.packages(packages)
    pkg_cmds = [] if _installed(wanted, packages_now or {}) else [apt_install(wanted, host.name)]
    # a dpkg left half-way (a deploy killed while apt ran, power lost) blocks every apt command
    recover_cmds = dpkg_recover(dpkg_now, host.name) if repo_cmds or pkg_cmds else []

    yield from repo_cmds
    # The drop-in goes in before the package so the postinst's first start already has it.
    yield from dropin_cmds
    if dropin_cmds:
        yield "systemctl daemon-reload"
    yield from recover_cmds
    if repo_cmds or pkg_cmds:
        yield apt_update(host.name)
    yield from pkg_cmds
    svc_cmds = list(owned.unit_running("tailscaled.service", status=unit_now))
    if dropin_cmds and not pkg_cmds and not svc_cmds:
        yield "systemctl restart tailscaled.service"
    yield from svc_cmds


# ---------------------------------------------------------------- prefs


@dataclass(frozen=True)
class Pref:
    """One tailscaled pref this project owns: its ipn.Prefs name, LivePrefs field and CLI flag."""

    name: str  # as `tailscale debug prefs` prints it; shown in diffs
    field: str  # LivePrefs attribute
    flag: str | None  # `tailscale up`/`set` flag; None: only `up` sets it
    settable: bool = True  # `tailscale set` changes it; False: it needs `tailscale up`
    inverted: bool = False  # the flag says the opposite (NoSNAT <- --snat-subnet-routes)
    reset_default: Any = (
        None  # what `up --reset` gives without the flag (then the flag is left out); None: always pass it
    )


# Why each is owned (docs/operations.md has what drifting each did on the lab):
OWNED_PREFS = (
    Pref("ControlURL", "control_url", "login-server", settable=False),
    Pref("WantRunning", "want_running", None, settable=False),  # `tailscale down` stops all forwarding
    Pref("AdvertiseRoutes", "subnet_routes", "advertise-routes"),  # the site's subnets
    Pref("RouteAll", "route_all", "accept-routes"),  # the other sites' subnets
    Pref("NoSNAT", "no_snat", "snat-subnet-routes", inverted=True),  # far end sees the real source
    Pref("CorpDNS", "corp_dns", "accept-dns"),  # a router keeps its own resolver
    Pref("AdvertiseTags", "advertise_tags", "advertise-tags", settable=False),
    # inbound connections from advertised routes need NoSNAT and NoStatefulFiltering
    Pref("NoStatefulFiltering", "no_stateful_filtering", "stateful-filtering", inverted=True, reset_default=True),
    Pref("NetfilterMode", "netfilter_mode", "netfilter-mode", reset_default="on"),  # ts-forward accepts forwarding
    Pref("ShieldsUp", "shields_up", "shields-up", reset_default=False),  # drops connections from the other sites
    Pref("ExitNode", "exit_node", "exit-node", reset_default=""),  # would route the LAN's internet traffic away
    Pref("Hostname", "hostname", "hostname"),
)


def flag_value(pref: Pref, value: Any) -> str:
    """`--flag=value` for a pref value (tuples comma-joined, inverted booleans flipped)."""
    if isinstance(value, bool):
        return f"--{pref.flag}={'true' if value != pref.inverted else 'false'}"
    text = ",".join(value) if isinstance(value, tuple) else str(value)
    return f"--{pref.flag}={shlex.quote(text)}" if text else f"--{pref.flag}="


def wanted_prefs(
    prefs: LivePrefs | None,
    routes: Iterable[str],
    accept_routes: bool,
    snat: bool,
    login_server: str | None,
    tags: Iterable[str],
    accept_dns: bool,
    hostname: str | None,
) -> dict[str, Any]:
    """Owned pref name -> the value the recipe wants (Hostname only when given)."""
    control_url = login_server or (prefs.control_url if prefs else "(default)")
    if prefs and login_server and prefs.control_url.rstrip("/") == login_server.rstrip("/"):
        control_url = prefs.control_url  # a trailing slash is no new server
    want = {
        "ControlURL": control_url,
        "WantRunning": True,
        "AdvertiseRoutes": normalise_prefixes(list(routes)),
        "RouteAll": accept_routes,
        "NoSNAT": not snat,
        "CorpDNS": accept_dns,
        "AdvertiseTags": normalise_tags(list(tags)),
        "NoStatefulFiltering": True,
        "NetfilterMode": "on",
        "ShieldsUp": False,
        "ExitNode": "",
    }
    if hostname:
        want["Hostname"] = hostname
    return want


def pref_changes(prefs: LivePrefs | None, want: dict[str, Any]) -> list[tuple[Pref, Any, Any]]:
    """(pref, live, wanted) for every owned pref that differs (all of them when there are no prefs)."""
    out = []
    for pref in OWNED_PREFS:
        if pref.name in want:
            live = getattr(prefs, pref.field) if prefs else None
            if live != want[pref.name]:
                out.append((pref, live, want[pref.name]))
    return out


def _hold_before_cli(*_: Any) -> bool:
    failpoint.reached(failpoint.TAILSCALE_CLI)
    return True


def _failpoint() -> list[FunctionCommand]:
    """The fault suite's hold just before `tailscale up`/`set` runs (at execution time; nothing
    unless S2S_FAILPOINT names it): it stops tailscaled, lets the command start, and cuts it off."""
    return [FunctionCommand(_hold_before_cli, (), {})] if failpoint.armed(failpoint.TAILSCALE_CLI) else []


def configure_facts(socket: str | None = None) -> dict[str, batch.Fact]:
    """What `configure` decides from (read in one batch)."""
    return {"prefs": (TailscalePrefs, {"socket": socket}), "status": (TailscaleStatus, {"socket": socket})}


@dataclass(frozen=True)
class Login:
    """Whether `configure` runs `tailscale up` (a login) rather than `tailscale set`, and why."""

    joined: bool  # logged in and running
    server_changed: bool  # the control URL differs: a new login
    tags_changed: bool  # the advertised tags differ: a new login
    stopped: bool  # logged in but `tailscale down`

    @classmethod
    def of(cls, prefs: LivePrefs | None, status: NodeStatus | None, login_server: str | None,
           changed: set[str]) -> Login:
        """From the node's prefs and status and the names of the prefs that differ from the wanted ones."""
        joined = bool(status and status.joined and prefs and not prefs.logged_out)
        logged_in = bool(status and status.logged_in and prefs and not prefs.logged_out)
        return cls(
            joined=joined,
            server_changed=bool(prefs and login_server and "ControlURL" in changed),
            tags_changed=bool(prefs and "AdvertiseTags" in changed),
            stopped=logged_in and not joined and bool(prefs and not prefs.want_running),
        )

    @property
    def needed(self) -> bool:
        return not self.joined or self.server_changed or self.tags_changed

    @property
    def brought_up(self) -> bool:
        """Stopped by hand and nothing else to log in for: a bare `tailscale up`, no auth key."""
        return self.stopped and not self.server_changed and not self.tags_changed

    @property
    def reason(self) -> str:
        """What the change log says `tailscale up` runs for."""
        if not self.joined:
            return "not joined"
        return "control server changed" if self.server_changed else "tags changed"


def up_command(cli: list[str], want: dict[str, Any], prefs: LivePrefs | None, login_server: str | None,
               login: Login, auth_key: AuthKey, timeout: str) -> StringCommand:
    """`tailscale up --reset` with every owned pref as wanted (the ones `--reset` defaults right left out),
    an exit node the operator advertises kept, and the auth key on stdin."""
    args = cli + ["up", "--reset"]
    for pref in OWNED_PREFS:
        if pref.flag is None or pref.name not in want:
            continue
        if pref.name == "ControlURL" and not login_server:
            continue
        if pref.reset_default is not None and want[pref.name] == pref.reset_default:
            continue
        args.append(flag_value(pref, want[pref.name]))
    if prefs and prefs.advertises_exit_node:
        args.append("--advertise-exit-node")  # not ours: keep it
    if login.joined and login.server_changed:
        args.append("--force-reauth")
    args.append(f"--auth-key={auth_key.cli_value()}")
    args.append(f"--timeout={shlex.quote(timeout)}")
    return StringCommand(*args, _stdin=auth_key.stdin())


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
) -> Generator[Any, None, None]:
    """
    Join the tailnet once (`tailscale up`), then keep every owned pref as declared with `tailscale set`.

    + routes: prefixes to advertise (the site subnet and its extra routes)
    + accept_routes: --accept-routes (other sites' subnets)
    + snat: --snat-subnet-routes (False for site-to-site: hosts see real sources)
    + login_server: control server URL (Headscale); None keeps Tailscale's default
    + tags: --advertise-tags (the router tag)
    + auth_key: AuthKey; passed as --auth-key=file:/dev/stdin, never on a command line
    + accept_dns: --accept-dns (False: a router keeps its own resolver)
    + timeout: how long `up` waits for Running
    + socket: tailscaled socket (tests)

    Also owned, always to the recipe's value: --stateful-filtering=false,
    --netfilter-mode=on, --shields-up=false, no --exit-node, and tailscaled
    running (WantRunning). `up --reset` runs only when the node is not logged in,
    or when the control URL or the tags differ (both need a new login, so the
    auth key is required then too); a node stopped by `tailscale down` gets a bare
    `up` (its prefs, the user's included, unchanged), then `set` for owned prefs.
    """
    facts = batch.read(**configure_facts(socket))
    prefs, status = facts["prefs"], facts["status"]
    want = wanted_prefs(prefs, routes, accept_routes, snat, login_server, tags, accept_dns, hostname)
    changes = pref_changes(prefs, want)
    shown = [(p.name, old, new) for p, old, new in changes]
    login = Login.of(prefs, status, login_server, {p.name for p, _, _ in changes})

    cli = ["tailscale"] + ([f"--socket={shlex.quote(socket)}"] if socket else [])
    if login.brought_up:
        # `tailscale down` by hand: a bare `up` (no flags) is Tailscale's "bring it up unchanged"
        # (cmd/tailscale/cli/up.go, checkForAccidentalSettingReverts), so the user's own prefs stay;
        # `up --reset` would put them back to their defaults. Bounded by `timeout`: a bare `up`
        # takes no --timeout (any flag makes it a full `up`). The owned prefs that differ: `set`.
        log_changes("tailscale prefs (stopped: tailscale up)", shown)
        yield from _failpoint()
        yield StringCommand("timeout", shlex.quote(timeout), *cli, "up")
    elif login.needed:
        if auth_key is None:
            raise OperationValueError(
                "tailscale needs an auth key to join (or to change control server/tags); none was given"
            )
        log_changes(
            f"tailscale prefs ({login.reason}: tailscale up)",
            shown or [("BackendState", status.backend_state if status else None, "Running")],
        )
        yield from _failpoint()
        yield up_command(cli, want, prefs, login_server, login, auth_key, timeout)
        return

    set_args = [flag_value(p, new) for p, _, new in changes if p.settable and p.flag]
    if not set_args:
        if not login.brought_up:
            host.noop("tailscale prefs are as declared")
        return
    if not login.brought_up:
        log_changes("tailscale prefs (tailscale set)", shown)
        yield from _failpoint()
    yield StringCommand(*cli, "set", *set_args)
