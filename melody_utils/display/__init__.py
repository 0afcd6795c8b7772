"""What people see and hear: plots (``plots``) and audio (``audio``)."""
