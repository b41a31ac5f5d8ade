"""Legetime: a headless platform for asynchronous digital doctor consultations.

The one import namespace of the distribution. Its parts live in the repository's top-level folders and
appear here by name (see docs/decisions/0005-one-import-namespace.md):

- ``legetime.core``: the domain, its rules and the platform that runs it; never imports the rest;
- ``legetime.plugins``: the built-in plugins (identity, payments, SMS, storage, journal drafting);
- ``legetime.schema``: the one GraphQL schema and the ASGI app that serves it;
- ``legetime.sdk``: what plugin authors import; ``legetime.testing``: the contract kit for their tests;
- ``legetime.cli``: the ``legetime`` command, which puts the parts together.
"""

__version__ = "0.1.0"
