"""`python -m s2s VERB ...`, the same as the installed `s2s` command."""

from s2s.cli import main

raise SystemExit(main())
