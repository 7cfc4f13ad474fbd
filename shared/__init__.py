"""Code shared by the API, the event handler and the workers."""
