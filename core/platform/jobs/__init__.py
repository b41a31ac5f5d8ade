"""Background jobs: a transactional outbox relayed to dramatiq, run by idempotent actors."""
