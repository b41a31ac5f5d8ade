"""SMS outbox: stores messages, nothing leaves the machine (development and tests)."""
