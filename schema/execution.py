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

Three more kinds of field skip the resolver, not the completion (``read_fields``): an object field without
a resolver (``edges``, ``node``, ``price``), read as an attribute; a field whose resolver only hands back
a value loaded beforehand (``preloaded``: ``Case.patient`` of a page), read from where the loader put it;
and a relay node's ``id`` with strawberry's own resolver (the type's name and its ``NodeID`` attribute,
as ``Node._id`` does it). Only strawberry's resolver wrappers (the ``Info``, the argument conversion, the
extension chain) are not run for them: their values are completed by graphql-core's own ``complete_value``
with a real resolve info and path, so sub-selections, errors and nulls are graphql-core's. An object that
is there and of its type goes straight to its sub-selection (``direct_object``), where ``complete_value``
would have sent it, without the resolve info nothing would read.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    get_named_type,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import to_nodes
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.relay import GlobalID, Node
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Reader = Callable[[Any, str], Any]
Leaf = tuple[str, Reader, Callable[[Any], Any], bool]  # python name, reader, coercion, nullable

_LEAVES: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, Leaf]] = weakref.WeakKeyDictionary()

PRELOADED = "legetime.preloaded"
"""Field metadata: the private attribute where a value loaded beforehand waits (``NOT_LOADED``: none
waits; the resolver loads it). The resolver must hand back exactly that value when one is there."""


class _NotLoaded:
    def __repr__(self) -> str:
        return "NOT_LOADED"


NOT_LOADED: Any = _NotLoaded()

OBJECT, NODE_ID = "object", "node_id"
Read = tuple[str, str, GraphQLField, Reader, GraphQLObjectType | None]
"""Kind (OBJECT, NODE_ID or PRELOADED), attribute, field, reader, and the object type its value is
completed as directly (``direct_object``)."""
_READS: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, Read]] = weakref.WeakKeyDictionary()
_NODE_ID_RESOLVER = Node.__dict__["_id"].__func__
_NODE_ID_ATTRIBUTES: dict[type, str | None] = {}
_NO_INFO: Any = None
"""What strawberry's own ``is_type_of`` gets for the info it ignores (``direct_object``)."""


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


def read_fields(parent_type: GraphQLObjectType) -> dict[str, Read]:
    """The fields of ``parent_type`` read without their resolver (see the module's doc), by GraphQL name."""
    reads = _READS.get(parent_type)
    if reads is None:
        reads = {}
        for name, field_def in parent_type.fields.items():
            definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField) or field_def.args or definition.extensions:
                continue
            resolver = definition.base_resolver
            named = get_named_type(field_def.type)
            if resolver is None:
                # Objects only (and lists of them): an interface or a union needs the resolve info's
                # type resolution, and is left to graphql-core.
                if getattr(field_def.resolve, "_is_default", False) and is_object_type(named):
                    reads[name] = (
                        OBJECT,
                        definition.python_name,
                        field_def,
                        definition.default_resolver,
                        direct_object(field_def.type),
                    )
            elif getattr(resolver.wrapped_func, "__func__", None) is _NODE_ID_RESOLVER:
                reads[name] = (NODE_ID, "", field_def, getattr, None)
            elif isinstance(attribute := definition.metadata.get(PRELOADED), str):
                reads[name] = (PRELOADED, attribute, field_def, getattr, direct_object(field_def.type))
        _READS[parent_type] = reads
    return reads


_STRAWBERRY_IS_TYPE_OF = (
    "GraphQLCoreConverter.from_object.<locals>._get_is_type_of.<locals>.is_type_of",
    "GraphQLCoreConverter._get_is_type_of.<locals>.is_type_of",
)


def direct_object(field_type: GraphQLOutputType) -> GraphQLObjectType | None:
    """The object type of a field of type ``T`` or ``T!`` whose value needs no resolve info to be completed:
    no ``is_type_of``, or strawberry's own (an ``isinstance``; it ignores the info). Lists, interfaces and
    unions are left to graphql-core's ``complete_value``."""
    named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if not is_object_type(named):
        return None
    is_type_of = named.is_type_of
    if is_type_of is not None and not (
        getattr(is_type_of, "__module__", None) == GraphQLCoreConverter.__module__
        and getattr(is_type_of, "__qualname__", None) in _STRAWBERRY_IS_TYPE_OF
    ):
        return None
    return named


def _node_id_attribute(cls: type) -> str | None:
    """The ``NodeID`` attribute of a node class that resolves its id and type name as ``Node`` does."""
    if cls not in _NODE_ID_ATTRIBUTES:
        attribute = None
        if issubclass(cls, Node) and all(
            getattr(getattr(cls, name), "__func__", None) is getattr(Node, name).__func__
            for name in ("resolve_id", "resolve_typename")
        ):
            attribute = cls.resolve_id_attr()
        _NODE_ID_ATTRIBUTES[cls] = attribute
    return _NODE_ID_ATTRIBUTES[cls]


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
        reads = {} if wrapped else read_fields(parent_type)
        if not leaves and not reads:
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
                field_name = field_details_list[0].node.name.value
                leaf = leaves.get(field_name)
                if leaf is not None:
                    value = _read(leaf, source_value)
                    if value is not Undefined:
                        results[response_name] = value
                        continue
                field_path = Path(path, response_name, parent_type.name)
                read = reads.get(field_name)
                value = Undefined if read is None else _read_value(read, parent_type, source_value)
                if read is None or value is Undefined:
                    result = self.execute_field(
                        parent_type, source_value, field_details_list, field_path, position_context
                    )
                else:
                    result = self.complete_read(
                        parent_type, read, field_details_list, field_path, value, position_context
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

    def complete_read(
        self,
        parent_type: GraphQLObjectType,
        read: Read,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's ``execute_field`` from the point where the resolver has returned ``result``.

        An object value of a ``direct_object`` type goes straight to its sub-selection, as
        ``complete_value`` would send it there (not null, not an exception, ``is_type_of`` true), without
        building a resolve info that nothing would read."""
        field_def, direct = read[2], read[4]
        return_type: GraphQLOutputType = field_def.type
        try:
            if (
                direct is not None
                and result is not None
                and not isinstance(result, Exception)
                and (direct.is_type_of is None or direct.is_type_of(result, _NO_INFO) is True)
            ):
                completed = self.collect_and_execute_subfields(
                    direct, field_details_list, path, result, position_context
                )
            else:
                info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
                completed = self.complete_value(
                    return_type, field_details_list, info, path, result, position_context
                )
            if self.is_awaitable(completed):

                async def await_completed() -> Any:
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, return_type, field_details_list, path)
                        return None

                return await_completed()
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed


def _read_value(read: Read, parent_type: GraphQLObjectType, source: Any) -> Any:
    """What the field's resolver would return, or ``Undefined`` when the resolver must run after all."""
    kind, attribute, _, reader, _ = read
    if kind == NODE_ID:
        id_attribute = _node_id_attribute(type(source))
        node_id = None if id_attribute is None else getattr(source, id_attribute, None)
        # Anything but a string id (missing, awaitable) goes through strawberry's resolver and its errors.
        return GlobalID(parent_type.name, node_id) if type(node_id) is str else Undefined
    try:
        value = reader(source, attribute)
    except Exception:  # the resolver raises it again, located, with its path
        return Undefined
    return Undefined if value is NOT_LOADED else value


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
