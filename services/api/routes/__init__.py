"""HTTP route handlers: thin translations from requests to domain calls."""
