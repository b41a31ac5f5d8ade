"""payments providers."""
