"""Pinned versions of the real programs the lab and the tests build.

Headscale 0.29.0 is built against tailscale.com v1.101-pre, so the client is
pinned to the nearest release (v1.100.0) to stay inside Headscale's supported
capability range.
"""

TAILSCALE_VERSION = "v1.100.0"
HEADSCALE_VERSION = "v0.29.0"
# the Headscale without grants that tests/controlplane/test_headscale_028.py checks against
HEADSCALE_028_VERSION = "v0.28.0"
