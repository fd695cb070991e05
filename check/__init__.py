"""Live diagnosis of a site-to-site network: read every site's state, change nothing, name the broken step."""
