"""Parsing and validating a document once, not on every request that sends it.

Frontends send the same few documents over and over; parsing and validating them is the same work each
time, and depends on nothing but the document's text and the schema. ``Documents`` keeps, per schema,
the parsed document of each recent text and whether it passed validation: a text seen before is neither
parsed nor validated again.

The request limits are validation rules and a parse option, made once per schema (not once per request):
the depth and alias limits, and no introspection when it is off; the token limit while parsing. A text is
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


class Documents:
    """The parsed documents of one schema, and the rules they are validated with."""

    def __init__(
        self,
        *,
        max_depth: int,
        max_aliases: int,
        max_tokens: int,
        introspection: bool,
        size: int = MAX_DOCUMENTS,
    ) -> None:
        rules: list[type[ASTValidationRule]] = [
            *specified_rules,
            max_depth_rule(max_depth, None, None),
            max_aliases_rule(max_aliases),
        ]
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.rules: tuple[type[ASTValidationRule], ...] = tuple(rules)
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

    def validate(self, schema: object, text: str, document: DocumentNode) -> list[GraphQLError]:
        """The validation errors of a document parsed by ``parse`` (none: it passed every rule)."""
        entry = self._entry(text)
        if entry is not None and entry.valid and entry.document is document:
            return []
        errors = validate_document(schema, document, self.rules)  # type: ignore[arg-type]
        if not errors and entry is not None and entry.document is document:
            entry.valid = True
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
            context.pre_execution_errors = self.documents.validate(
                context.schema._schema, context.query, context.graphql_document
            )
        yield
