"""pyinfra operation for Headscale's file policy mode (policy.mode: file).

In file mode the API cannot write the policy, so the deploy edits the file on
the Headscale host with the same merge the API backends use. Decided from a
fact (the file's current text): no change, no command. A new text is uploaded
next to the file, checked by Headscale (`headscale policy check -f`), moved
into place only if accepted, then Headscale is told to reload (SIGHUP, what the
packaged unit's ExecReload does). A rejected policy leaves the old file whole.
The syntax of the rules ([tailnet] policy_syntax) follows the server's version, read
with the Headscale CLI on that host (`headscale version -o json`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Generator
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.facts.files import FileContents

from controlplane import policy as pol
from controlplane import version as ver


class HeadscaleVersion(FactBase):
    """The version `headscale version -o json` reports on the host; "" when it cannot say."""

    def command(self, command: str) -> str:
        return f"{command} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        try:
            body = json.loads("\n".join(output))
        except ValueError:
            return ""
        return str(body.get("version") or "") if isinstance(body, dict) else ""

    @staticmethod
    def default() -> str:
        return ""


def current_text(lines: list[str] | None) -> str:
    """FileContents gives lines without their newlines; None when the file is missing."""
    return "\n".join(lines) + "\n" if lines else ""


@operation()
def headscale_policy_file(
    path: str,
    spec: pol.PolicySpec,
    check_command: str = "headscale policy check -f {file}",
    reload_command: str = "systemctl reload headscale",
    version_command: str = "headscale version -o json",
) -> Generator[Any, None, None]:
    """Merge the sites' entries into Headscale's policy file (comments and hand entries kept).

    + version_command: prints the server's version as JSON (grants from 0.29; unknown: acls for
      a first policy, and `headscale policy check` judges an explicit grants)
    """
    before = current_text(host.get_fact(FileContents, path=path))
    grants = ver.headscale_has_grants(host.get_fact(HeadscaleVersion, command=version_command))
    after = pol.merge(before, spec, grants)
    if after == before:
        host.noop(f"policy file {path} is up to date")
        return
    staged = f"{path}.s2s-new"
    yield FileUploadCommand(StringIO(after), staged)
    q_staged, q_path = shlex.quote(staged), shlex.quote(path)
    check = check_command.format(file=q_staged)
    yield f"( {check} ) || {{ rm -f {q_staged}; exit 1; }}"
    yield f"chmod --reference={q_path} {q_staged} 2>/dev/null; mv -f {q_staged} {q_path}"
    yield reload_command
