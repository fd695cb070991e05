"""pyinfra facts and operations that configure Tailscale subnet routers (site-to-site, L3).

Modules: parse (pure parsers), facts, tailscale, forwarding, mss, gro, checks,
router (the @deploy that runs them in the recipe's order), secret (auth keys
that never reach logs).
"""
