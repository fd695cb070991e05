"""The deploy's steps that span systems (control plane, Kea) and the inputs deploy.py reads."""
