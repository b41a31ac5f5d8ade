"""invoicing providers."""
