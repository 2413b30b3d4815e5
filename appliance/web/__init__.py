"""The web UI and JSON API (Flask), served by waitress."""
