"""Execution without per-field machinery for plain values.

A case list of 50 cases asks for about 750 scalar fields that are plain attributes of the strawberry
objects (``Case.of`` sets them once). graphql-core resolves each one like any other field: a path
object, a resolve-info object, the argument check, strawberry's resolver wrapper, an awaitable check and
the completion dispatch — most of a request's GraphQL time. ``PlainLeafExecutor`` reads such a field
directly: the attribute, then the leaf type's output coercion, exactly what that machinery ends with.

A field takes this path only when nothing could observe the difference: strawberry calls it a basic
field (no resolver, no permission classes, no field extensions), its type is a scalar or an enum, no
middleware runs, and the value is there and coerces. Anything else — a missing value for a non-null
field, a coercion error — goes through graphql-core's own ``execute_field``, so errors, their paths and
null propagation are graphql-core's. None of our schema extensions wraps resolvers (see
``legetime.schema.build.extensions``); one that did would have to switch this off.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    is_leaf_type,
)
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

Reader = Callable[[Any, str], Any]
Leaf = tuple[str, Reader, Callable[[Any], Any], bool]  # python name, reader, coercion, nullable

_LEAVES: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, Leaf]] = weakref.WeakKeyDictionary()


def plain_leaves(parent_type: GraphQLObjectType) -> dict[str, Leaf]:
    """The fields of ``parent_type`` that are plain leaf attributes, by GraphQL name (made once per type)."""
    leaves = _LEAVES.get(parent_type)
    if leaves is None:
        leaves = {}
        for name, field_def in parent_type.fields.items():
            definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            resolve = field_def.resolve
            if definition is None or not getattr(resolve, "_is_default", False) or field_def.args:
                continue
            nullable = not isinstance(field_def.type, GraphQLNonNull)
            leaf_type = field_def.type if nullable else field_def.type.of_type
            if not is_leaf_type(leaf_type):
                continue
            leaves[name] = (
                definition.python_name,
                definition.default_resolver,
                leaf_type.coerce_output_value,
                nullable,
            )
        _LEAVES[parent_type] = leaves
    return leaves


class PlainLeafExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, with plain leaf fields read in place (see the module's doc)."""

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        middleware = self.middleware_manager
        wrapped = middleware is not None and middleware.middlewares  # strawberry passes an empty manager
        leaves = {} if wrapped else plain_leaves(parent_type)
        if not leaves:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        # graphql-core's loop (``Executor.execute_fields``), with the plain-leaf branch in front: the
        # response keeps the selection's order.
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                leaf = leaves.get(field_details_list[0].node.name.value)
                if leaf is not None:
                    value = _read(leaf, source_value)
                    if value is not Undefined:
                        results[response_name] = value
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()


def _read(leaf: Leaf, source: Any) -> Any:
    """The field's completed value, or ``Undefined`` when graphql-core must complete it (an error)."""
    python_name, reader, coerce, nullable = leaf
    try:
        value = reader(source, python_name)
        if value is None:
            return None if nullable else Undefined
        coerced = coerce(value)
    except Exception:  # graphql-core's path raises it again, located, with its path
        return Undefined
    return Undefined if coerced is None or coerced is Undefined else coerced
