"""Clean removal of a site or router taken out of the site file.

The site file says what should exist; it cannot say what used to. `record`
keeps, next to the site file, what the deploy last applied (per router: its SSH
target, tailnet node name and advertised prefixes; never a secret), so a later
`pyinfra inventory.py deploy.py --data prune=true` can find a removed router,
unapprove exactly its routes and clean up the router itself. docs/removal.md.
"""
