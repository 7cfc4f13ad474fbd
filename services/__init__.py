"""The platform's services: api, eventhandler and workers."""
