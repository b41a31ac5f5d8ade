"""scheduling providers."""
