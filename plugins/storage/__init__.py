"""storage providers."""
