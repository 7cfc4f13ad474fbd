"""Incidents: the aggregate and its rules, request and response bodies, the service layer, routes, links."""
