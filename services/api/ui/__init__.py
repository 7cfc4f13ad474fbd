"""The web console: static files under /ui/, served by the API with strict security headers."""
