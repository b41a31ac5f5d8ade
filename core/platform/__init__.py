"""The platform the domain runs on: settings, the plugin manager and its typed hooks, the provider
registry and the capabilities' Protocols, the database, the transactional outbox and its job runner."""
