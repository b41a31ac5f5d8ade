"""The whole extension contract of Legetime.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names are hooks below.
Default features are plugins like any other; third-party plugins are found through the ``legetime``
entry-point group. An implementation may leave out arguments it does not need, but must not add any, and
must not give arguments default values (pluggy ignores them). A misspelled hook name fails start-up.

Hooks are grouped by purpose: providers, storage, domain, jobs, events, GraphQL, HTTP, lifecycle. Every
hook is documented in ``docs/hooks.md`` with this signature, and tested (``tests/test_hookspecs_meta.py``
checks all three).
Plugins import what they need from ``legetime.sdk``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from legetime.core.platform.db.plugin_tables import PluginTables
    from legetime.core.platform.events import Event
    from legetime.core.platform.jobs.types import JobHandler, PeriodicJob
    from legetime.core.platform.providers import ProviderSpec
    from legetime.core.platform.runtime import Platform
    from legetime.core.platform.summary_care import SummaryCareRecord

PROJECT_NAME = "legetime"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- Providers -------------------------------------------------------------------------------------


@hookspec
def register_providers() -> Iterable[ProviderSpec]:
    """Offer providers (identity, payment, sms, storage, journal).

    Return ``ProviderSpec`` objects; configuration decides which are enabled. Names are unique per
    capability across all plugins.
    """


# --- Storage ---------------------------------------------------------------------------------------


@hookspec
def register_tables() -> PluginTables | None:
    """Keep tables in the platform's database: return ``PluginTables`` (a table prefix, the ``MetaData``
    and the folder of the plugin's own Alembic branch).

    ``legetime migrate`` applies the branch of every installed plugin; providers reach the tables through
    ``ProviderContext.database``. A plugin keeps no state file of its own. Prefixes are unique.
    """


# --- Domain ----------------------------------------------------------------------------------------


@hookspec
def verify_guardianship(
    guardian_national_id: str, child_national_id: str
) -> bool | Awaitable[bool | None] | None:
    """Confirm that a guardian has parental responsibility for a child (e.g. from the population register).

    Return True (confirmed), False (refused: the case is not opened) or None (no opinion). May return an
    awaitable. With no plugin giving an opinion, the guardian's own declaration is recorded and accepted.
    """


@hookspec(firstresult=True)
def fetch_summary_care_record(
    national_id: str, clinician_hpr_number: str | None, platform: Platform
) -> SummaryCareRecord | Awaitable[SummaryCareRecord | None] | None:
    """Fetch the patient's summary care record (Kjernejournal) for the clinician who holds her case.

    Called only while the patient consents to the look-up (``kjernejournal_lookup``) and only for the
    case's clinician (``clinician_hpr_number``: her HPR number); every call is in the access log. Return
    a ``SummaryCareRecord``, or None (no record here: the next plugin is asked). The first record wins;
    the built-in simulation is asked last. May return an awaitable. Never store or log the record.
    """


# --- Jobs ------------------------------------------------------------------------------------------


@hookspec
def register_jobs() -> Mapping[str, JobHandler]:
    """Offer background job handlers by name (``"plugin.action"``).

    A handler is ``async def handler(ctx: JobContext, payload: dict) -> None``. Delivery is at least
    once: a handler must be idempotent (``ctx.job_id`` is stable across redeliveries). Names are unique.
    """


@hookspec
def register_periodic_jobs() -> Iterable[PeriodicJob]:
    """Offer work run on a schedule (``PeriodicJob``: a name, ``async def run(platform)`` and the interval).

    Every process that runs jobs runs it, one run at a time per process; a run must lock what it takes and
    be safe to repeat. Names are unique.
    """


# --- Events ----------------------------------------------------------------------------------------


@hookspec
def handle_event(event: Event, platform: Platform) -> Awaitable[None] | None:
    """React to a domain event (a case submitted, a payment captured …; ``Event``, docs/events.md).

    Delivered after the change committed, at least once, through the job system: a failure (an
    exception) is retried with backoff, and a redelivery carries the same ``event.id`` — deduplicate on
    it. Events carry ids, codes and statuses, never health content. May return an awaitable.
    """


# --- GraphQL ---------------------------------------------------------------------------------------


@hookspec
def register_graphql_queries() -> Iterable[type]:
    """Contribute fields to the root ``Query``: return strawberry types whose fields are merged in.

    A field name already present in the schema is an error at start-up.
    """


@hookspec
def register_graphql_mutations() -> Iterable[type]:
    """Contribute fields to the root ``Mutation`` (same rules as ``register_graphql_queries``)."""


# --- HTTP ------------------------------------------------------------------------------------------


@hookspec
def register_routes() -> Iterable[BaseRoute]:
    """Contribute Starlette routes (webhooks, redirects). Paths must start with ``/plugins/<name>/``."""


# --- Lifecycle -------------------------------------------------------------------------------------


@hookspec
def startup(platform: Platform) -> Awaitable[None] | None:
    """Called once when the platform has started (API or worker). May return an awaitable."""


@hookspec
def plugin_info() -> Mapping[str, str]:
    """Describe the plugin for operators (``legetime plugins``): ``{"description": ..., "url": ...}``."""
