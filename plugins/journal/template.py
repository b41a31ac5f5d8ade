"""Deterministic template journal drafter."""
