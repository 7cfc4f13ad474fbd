"""Alerts in: the PagerDuty Events API v2 and Alertmanager webhooks turned into deduplicated incidents."""
