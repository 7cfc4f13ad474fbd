"""The web console: its static files, its routes and the live feed of incident events."""
