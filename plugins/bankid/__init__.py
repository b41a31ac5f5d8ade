"""bankid providers."""
