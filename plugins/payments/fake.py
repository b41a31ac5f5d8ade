"""Fake card payments with a realistic state machine (development and tests)."""
