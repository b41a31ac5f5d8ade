"""Outbound webhooks: the domain events, signed (Standard Webhooks) and POSTed to integrators' endpoints.

- ``signing``: the endpoint's secrets (``whsec_…``, sealed at rest) and the signature headers.
- ``addresses``: which URLs may be called (https only in production, no private or local addresses).
- ``delivery``: one delivery per event and subscribed endpoint, one attempt per job, the retry schedule,
  and disabling an endpoint whose deliveries keep failing.

Operators manage endpoints through ``legetime.core.protection.webhook_endpoints`` (every change in the
access log); docs/events.md, "Webhooks", is the integrator's side.
"""
