"""Assemble the one schema: core types plus what plugins contribute, with the request limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from legetime.core.platform.errors import PluginError
from legetime.core.platform.runtime import Platform
from legetime.schema.access_log_api import AccessLogQuery
from legetime.schema.access_review_api import AccessReviewQuery
from legetime.schema.appointment_api import AppointmentMutation, AppointmentQuery
from legetime.schema.appointment_links_api import AppointmentLinkMutation, AppointmentLinkQuery
from legetime.schema.appointment_payment_api import AppointmentPaymentMutation, AppointmentPaymentQuery
from legetime.schema.case_api import CaseQuery, ClinicianMutation, PatientMutation
from legetime.schema.clinic_api import ClinicMutation, ClinicQuery
from legetime.schema.documents import DocumentCache, Documents
from legetime.schema.errors import ErrorCodes, log_errors
from legetime.schema.execution import PlainLeafExecutor
from legetime.schema.input_guard import InputGuard
from legetime.schema.integrator_api import IntegratorMutation, IntegratorQuery
from legetime.schema.live_api import LiveSubscription
from legetime.schema.login import LoginMutation, LoginQuery
from legetime.schema.operator_api import OperatorQuery
from legetime.schema.payment_api import PaymentMutation, PaymentQuery
from legetime.schema.platform_types import PlatformQuery, node_query
from legetime.schema.privacy_api import PrivacyMutation, PrivacyQuery
from legetime.schema.settings_api import SettingsMutation, SettingsQuery
from legetime.schema.sla_alerts_api import SlaAlertMutation, SlaAlertQuery
from legetime.schema.staff_api import StaffMutation, StaffQuery
from legetime.schema.summary_care_api import SummaryCareQuery
from legetime.schema.survey_api import SurveyMutation, SurveyQuery
from legetime.schema.video_api import VideoMutation
from legetime.schema.webhooks_api import WebhookMutation, WebhookQuery

CORE_QUERIES: tuple[type, ...] = (
    PlatformQuery,
    LoginQuery,
    CaseQuery,
    OperatorQuery,
    AccessLogQuery,
    AccessReviewQuery,
    PrivacyQuery,
    PaymentQuery,
    WebhookQuery,
    IntegratorQuery,
    SlaAlertQuery,
    StaffQuery,
    SummaryCareQuery,
    SettingsQuery,
    ClinicQuery,
    AppointmentQuery,
    AppointmentLinkQuery,
    AppointmentPaymentQuery,
    SurveyQuery,
)
CORE_MUTATIONS: tuple[type, ...] = (
    LoginMutation,
    PatientMutation,
    ClinicianMutation,
    PrivacyMutation,
    PaymentMutation,
    WebhookMutation,
    IntegratorMutation,
    SlaAlertMutation,
    StaffMutation,
    SettingsMutation,
    ClinicMutation,
    AppointmentMutation,
    AppointmentLinkMutation,
    AppointmentPaymentMutation,
    VideoMutation,
    SurveyMutation,
)


def _merge(name: str, types: Iterable[type]) -> type | None:
    """Merge root types, refusing duplicate field names (strawberry itself would only warn)."""
    types = tuple(types)
    if not types:
        return None
    converter = NameConverter()
    owner: dict[str, str] = {}
    for type_ in types:
        definition = getattr(type_, "__strawberry_definition__", None)
        if definition is None:
            raise PluginError(f"{type_!r} contributed to {name} is not a strawberry type")
        for field in definition.fields:
            graphql_name = converter.get_graphql_name(field)
            if graphql_name in owner:
                first, second = owner[graphql_name], type_.__qualname__
                raise PluginError(f"{name}.{graphql_name} is defined twice: by {first} and {second}")
            owner[graphql_name] = type_.__qualname__
    return merge_types(name, types)


def extensions(
    platform: Platform, documents: Documents
) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """Error handling, the input guard and the request limits, as factories: a fresh extension per
    request. None of them wraps a resolver (none implements ``resolve``): each works once per request.
    The limits (depth, aliases, tokens, introspection) are checked while parsing and validating, by
    ``DocumentCache`` with rules made once per schema; it goes last (see ``legetime.schema.documents``)."""
    mask = platform.settings.is_production
    return [lambda: ErrorCodes(mask=mask), InputGuard, lambda: DocumentCache(documents)]


class LoggedSchema(strawberry.Schema):
    """Logs errors as structured events with codes (``log_errors``), not strawberry's default (the
    message and a traceback for every refusal). ``documents``: its parsed and validated documents."""

    documents: Documents

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors, execution_context)


def build_schema(platform: Platform) -> LoggedSchema:
    query = _merge("Query", (*CORE_QUERIES, node_query(), *platform.hooks.graphql_queries()))
    mutation = _merge("Mutation", (*CORE_MUTATIONS, *platform.hooks.graphql_mutations()))
    assert query is not None
    settings = platform.settings
    documents = Documents(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        introspection=settings.introspection,
        # The playground, where it is on, needs the schema: staff may introspect (docs/operations.md).
        staff_introspection=settings.introspection or settings.graphiql,
    )
    schema = LoggedSchema(
        query=query,
        mutation=mutation,
        subscription=LiveSubscription,
        extensions=extensions(platform, documents),
        config=StrawberryConfig(relay_max_results=settings.max_page_size),
        execution_context_class=PlainLeafExecutor,
    )
    schema.documents = documents
    return schema
