"""Outbound webhook endpoints: their store, request and response bodies, and routes."""
