"""`python -m controlplane plan|apply [--sites PATH] [--dry-run]`."""

from controlplane.cli import main

raise SystemExit(main())
