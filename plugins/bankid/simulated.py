"""Simulated BankID for synthetic test national IDs (development only)."""
