"""The incident REST API: Litestar over a transactional outbox."""
