"""Drivers and task modules of the peer libraries; each runs only inside its own venv."""
