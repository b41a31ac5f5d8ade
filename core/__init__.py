"""The core: the consultation, its rules and the platform that runs it.

Layers, each importing only those below it (enforced by import-linter in ``make lint``)::

    core_plugin, demo   the core's own plugin (its jobs and periodic work); demo data
    privacy             her rights: export, erasure, withdrawn consent, rectification, restriction
    consultation        cases and their states, submitting and the fee, consents, journal, images, SMS notices
    protection          the access log, health content sealed at rest, key rotation, retention
    identity            who someone is: national IDs, phone numbers, persons, logins, actors
    platform            settings, the plugin manager and hooks, providers, database, jobs

The plugin contract is ``hookspecs.py``. The core never imports ``legetime.plugins`` or
``legetime.schema``: it loads plugins by name through pluggy.
"""
