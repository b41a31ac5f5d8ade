"""journal providers."""
