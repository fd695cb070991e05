"""The local two-site lab: real Debian hosts in network namespaces."""
