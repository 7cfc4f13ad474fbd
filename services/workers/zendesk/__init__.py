"""Zendesk worker: one ticket per incident, with external_id `incident-<id>`."""
