"""Cross-cutting HTTP: middleware, the error shape, metrics, OpenAPI error responses, parameter parsing."""
