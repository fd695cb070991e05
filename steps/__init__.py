"""The deploy's pyinfra steps that span systems (control plane, Kea, the Headscale policy file)
and the inputs deploy.py reads; the routers' own operations are operations/."""
