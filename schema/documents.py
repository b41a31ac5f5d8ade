"""Parsing and validating a document once, not on every request that sends it.

Frontends send the same few documents over and over; parsing and validating them is the same work each
time, and depends on nothing but the document's text and the schema. ``Documents`` keeps, per schema,
the parsed document of each recent text and whether it passed validation: a text seen before is neither
parsed nor validated again.

The request limits are validation rules and a parse option, made once per schema (not once per request):
the depth and alias limits, and no introspection when it is off (for staff it may be on: the playground
in production); the token limit while parsing. A text is
remembered only after it parsed within the token limit, and as valid only after it passed every rule, so
the cache never lets a document skip a limit: one that failed is parsed and validated again each time it
is sent. What depends on the request and not on the text is checked on every request all the same: the
variables (``InputGuard``), and which operation runs (``ErrorCodes``).

The cache is bounded (least recently used first out): a client sending ever new documents evicts older
ones, which costs their parsing and validation again, nothing more.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass

from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse, specified_rules
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.schema.schema import validate_document

MAX_DOCUMENTS = 500
"""Documents kept per schema; a frontend has tens."""
MAX_DOCUMENT_CHARACTERS = 100_000
"""A longer text is parsed and validated every time it is sent, not kept: a frontend's are far shorter."""


@dataclass
class _Entry:
    document: DocumentNode
    valid: bool = False
    """It passed every rule (introspection allowed only where it is allowed for everyone)."""
    valid_for_staff: bool = False
    """It passed the rules for staff (who may introspect where the playground is on)."""


class Documents:
    """The parsed documents of one schema, and the rules they are validated with."""

    def __init__(
        self,
        *,
        max_depth: int,
        max_aliases: int,
        max_tokens: int,
        introspection: bool,
        staff_introspection: bool | None = None,
        size: int = MAX_DOCUMENTS,
    ) -> None:
        """``staff_introspection``: whether staff may introspect where others may not (the playground in
        production needs the schema for its completion and docs); by default as everyone."""
        rules: list[type[ASTValidationRule]] = [
            *specified_rules,
            max_depth_rule(max_depth, None, None),
            max_aliases_rule(max_aliases),
        ]
        closed: list[type[ASTValidationRule]] = [NoSchemaIntrospectionCustomRule]
        self.rules: tuple[type[ASTValidationRule], ...] = tuple(rules + ([] if introspection else closed))
        staff = introspection or bool(staff_introspection)
        self.staff_rules: tuple[type[ASTValidationRule], ...] = tuple(rules + ([] if staff else closed))
        self.max_tokens = max_tokens
        self.size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, text: str) -> _Entry | None:
        entry = self._entries.get(text)
        if entry is not None:
            self._entries.move_to_end(text)
        return entry

    def parse(self, text: str) -> DocumentNode:
        """The parsed document (raises ``GraphQLError`` when it does not parse within the token limit)."""
        entry = self._entry(text)
        if entry is None:
            if len(text) > MAX_DOCUMENT_CHARACTERS:
                return parse(text, max_tokens=self.max_tokens)
            entry = _Entry(parse(text, max_tokens=self.max_tokens))
            self._entries[text] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry.document

    def validate(
        self, schema: object, text: str, document: DocumentNode, *, staff: bool = False
    ) -> list[GraphQLError]:
        """The validation errors of a document parsed by ``parse`` (none: it passed every rule), for
        staff or for anyone."""
        entry = self._entry(text)
        if entry is not None and entry.document is not document:
            entry = None
        if entry is not None and (entry.valid or (staff and entry.valid_for_staff)):
            return []
        errors = validate_document(schema, document, self.staff_rules if staff else self.rules)  # type: ignore[arg-type]
        if not errors and entry is not None:
            entry.valid_for_staff = True
            entry.valid = entry.valid or not staff
        return errors

    def is_valid(self, text: str) -> bool:
        """Whether this text was parsed and passed validation (and is still remembered)."""
        entry = self._entries.get(text)
        return entry is not None and entry.valid

    def __len__(self) -> int:
        return len(self._entries)


class DocumentCache(SchemaExtension):
    """Parses and validates through ``Documents``. Goes last among the extensions, so that those that
    refuse a request while it is validated (``ErrorCodes``, ``InputGuard``) have had their say."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = self.documents.rules
        context.parse_options["max_tokens"] = self.documents.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            # One that does not parse is parsed again by strawberry, and refused as any parse error.
            with suppress(GraphQLError):
                context.graphql_document = self.documents.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None and context.query:
            actor = getattr(context.context, "actor", None)
            context.pre_execution_errors = self.documents.validate(
                context.schema._schema,
                context.query,
                context.graphql_document,
                staff=bool(actor is not None and actor.staff_roles),
            )
        yield
