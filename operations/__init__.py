"""pyinfra facts and operations that configure Tailscale subnet routers (site-to-site, L3).

Modules: facts/ (one module per subject: its facts, parsers and result types),
owned (files and units this project owns), batch (several facts in one command),
tailscale (install; the owned prefs table and the join/set operation),
forwarding, mss, gro, checks, router (the @deploy that runs them in the recipe's
order), summary (failed hosts and the state they were left in), secret (auth
keys that never reach logs).
"""
