"""DHCP option 121/249 routes: plan them from the site model, push them into Kea."""
