"""Command line: plan (dry-run) or apply the control-plane changes the site file needs.

Exit codes: 0 done (or nothing to do), 1 control-plane failure (one line on
stderr, nothing half-written: see controlplane.base), 2 bad site file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controlplane.base import ControlPlane
    from sites.model import SiteModel

import argparse
import os
import sys
from collections.abc import Sequence

from controlplane import reach
from controlplane.model import ControlPlaneError
from controlplane.policy import PolicyError


def build_parser() -> argparse.ArgumentParser:
    from sites.cli import add_sites_argument

    parser = argparse.ArgumentParser(prog="python -m controlplane", description=__doc__.splitlines()[0])
    parser.add_argument(
        "action",
        choices=("plan", "apply", "authkey"),
        help="plan: show what would change; apply: do it; "
        "authkey: write a tagged pre-authorised key for routers joining (--out)",
    )
    parser.add_argument("--out", metavar="FILE", help="authkey: file to write the key to (mode 0600; never printed)")
    parser.add_argument("--reusable", action="store_true", help="authkey: the key may join several routers")
    parser.add_argument("--expiry", type=int, default=3600, metavar="SECONDS", help="authkey: lifetime (default 3600)")
    add_sites_argument(parser)
    parser.add_argument("--dry-run", action="store_true", help="with apply: only show the plan (same as plan)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per API call (default 15)")
    return parser


def run(
    model: SiteModel,
    action: str,
    dry_run: bool = False,
    timeout: float = 15.0,
    out: str | None = None,
    reusable: bool = False,
    expiry: int = 3600,
) -> int:
    """Plan and maybe apply for an already loaded model; errors are one line on stderr."""
    from sites import SecretError

    try:
        with reach(model, timeout=timeout) as cp:
            if action == "authkey":
                return _authkey(cp, model, out, reusable, expiry)
            return _run(cp, model, action, dry_run)
    except (ControlPlaneError, PolicyError, SecretError) as exc:
        print(f"controlplane: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _authkey(cp: ControlPlane, model: SiteModel, out: str | None, reusable: bool, expiry: int) -> int:
    """Mint a pre-authorised key carrying the router tag into a new 0600 file (the key is never shown)."""
    if not out:
        print("controlplane: error: authkey needs --out FILE (the key is never printed)", file=sys.stderr)
        return 2
    tag = model.tailnet.tag
    key = cp.create_auth_key([tag], reusable=reusable, expiry_seconds=expiry)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(out, 0o600)
    print(f"wrote a pre-authorised {tag} auth key to {out} (mode 0600); point [tailnet] auth_key_file at it")
    return 0


def _run(cp: ControlPlane, model: SiteModel, action: str, dry_run: bool) -> int:
    """Plan, print, maybe apply (errors propagate to run())."""
    changes = cp.plan(model)
    print(changes.render())
    if action == "plan" or dry_run:
        print("dry run: nothing written" if not changes.empty else "dry run: nothing to do")
        return 0
    if changes.empty:
        print("nothing to do")
        return 0
    if changes.policy is not None and cp.lock_policy_writes:  # no ETag: controlplane.lock
        from controlplane.lock import lock_key, policy_lock

        with policy_lock(lock_key(model), cp.api.shown + cp.api.via, on_wait=lambda line: print(line, file=sys.stderr)):
            changes = cp.plan(model)  # again, under the lock: another deploy may have just written
            done = cp.apply(changes) if not changes.empty else ["nothing to do (another deploy did it)"]
    else:
        done = cp.apply(changes)
    for line in done:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from sites.cli import load_or_exit

    args = build_parser().parse_args(argv)
    model = load_or_exit(args.sites)
    return run(model, args.action, args.dry_run, args.timeout, args.out, args.reusable, args.expiry)
