"""The notebooks' interactive generator (``widgets``)."""
