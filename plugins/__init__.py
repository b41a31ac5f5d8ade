"""Built-in plugins. Each imports only ``core`` (never another plugin, never ``schema``)."""
