"""The shared storage: the database seam, tables, the incident repository, bulk writes, group commit, the outbox."""
