"""The `s2s` command: the project's own tools behind one command with verbs."""
