"""A deploy with no operations: pyinfra's own floor (connect, prepare, disconnect) on the same hosts."""
