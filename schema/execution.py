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

**Plans** (``PlainLeafExecutor.plan``). graphql-core collects a selection once per execution and hands
the same grouped field set to ``execute_fields`` for every object of a list (``collect_subfields`` is
memoised on the field group), with fragments, aliases and ``@skip``/``@include`` already applied. The
first time a grouped field set comes, its fields are sorted into steps, once per execution, and every
node of the page is completed by running them: a plain leaf (LEAF), ``__typename`` (TYPENAME: the type's
name, as graphql-core's meta field answers), a relay ``id`` of type ``ID!`` (NODE_LEAF: the global id
coerced as ``complete_leaf_value`` does), an object of a ``direct_object`` type (SUBOBJECT) or a list of
them, ``[T!]`` or ``[T!]!`` (SUBLIST): their sub-selection is collected once and run by its own plan,
without ``complete_value``'s dispatch; anything else (READ, FIELD) as before. A plan is per execution,
not per document: variables and the request's ``@skip``/``@include`` are graphql-core's to apply, and
nothing outlives the request.

Why it answers as graphql-core does: each step takes only a value it can complete the way
``complete_value`` ends for it (a value that coerces; an object that is there and passes its
``is_type_of``; a list or tuple whose items are all such objects, checked before any is completed), and
hands anything else — null for a non-null field, an exception, a wrong type, a value that does not
coerce, an awaitable — to graphql-core's ``execute_field`` or ``complete_value`` with a real path and
resolve info. Errors raised inside a sub-selection are handled where ``execute_field`` and
``complete_list_item_value`` would handle them (``handle_field_error`` at the item's or the field's path),
so null propagation is the spec's. Incremental delivery (``@defer``, ``@stream``, a position context) is
never planned. tests/test_plain_leaf_execution.py compares answers, errors and paths with graphql-core's.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from operator import attrgetter
from typing import Any, cast

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    get_named_type,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import to_nodes
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.relay import GlobalID, Node
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Reader = Callable[[Any, str], Any]
Leaf = tuple[str, Reader, Callable[[Any], Any], bool, type | None]
"""Python name, reader, coercion, nullable, and the Python type the coercion hands back unchanged."""

_UNCHANGED: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool, GraphQLInt: int}
"""Built-in scalars whose output coercion returns a value of exactly this type as it is (an ``int`` within
32 bits): a page's strings, flags and numbers skip the call."""
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

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
                _coercion(leaf_type),
                nullable,
                _UNCHANGED.get(leaf_type),
            )
        _LEAVES[parent_type] = leaves
    return leaves


def _coercion(leaf_type: Any) -> Callable[[Any], Any]:
    """The leaf type's output coercion. For a strawberry enum, a look-up of its member's name first:
    strawberry's own compares the value with each of the enum's values in turn, on every call."""
    coerce: Callable[[Any], Any] = leaf_type.coerce_output_value
    if not isinstance(leaf_type, CustomGraphQLEnumType):
        return coerce
    wrapped: Any = leaf_type.wrapped_cls
    names: dict[Any, str] = {}
    for member in wrapped:
        for name, value in leaf_type.values.items():
            if member.value == value.value:
                names.setdefault(member, name)  # the first, as strawberry's own finds it

    def coerce_member(value: Any) -> Any:
        name = names.get(value) if type(value) is wrapped else None
        return coerce(value) if name is None else name

    return coerce_member


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


# The steps of a plan (``PlainLeafExecutor.plan``): what each response key of a selection costs.
LEAF, NODE_LEAF, TYPENAME, SUBOBJECT, SUBLIST, READ, FIELD, LEAVES = range(8)
Step = tuple[Any, ...]
"""(kind, response name, field details list, …): LEAF (python name, reader, coercion, nullable, unchanged);
LEAVES (response name and field details list None: an ``attrgetter`` of the run's python names, those
names, each leaf's response name and field details list, and the run's compiled function,
``_compiled_run``);
NODE_LEAF (coercion); TYPENAME (the type's name); SUBOBJECT and SUBLIST (the read, its object type, the
return type, a one-item list for the sub-selection's plan, filled at first use); READ (the read); FIELD (none:
graphql-core's ``execute_field``)."""


class PlainLeafExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, with plain fields read in place (see the module's doc)."""

    _plans: dict[int, tuple[GroupedFieldSet, GraphQLObjectType, list[Step]]] | None = None

    def plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> list[Step]:
        """The steps that complete ``grouped_field_set`` on objects of ``parent_type``, made once per
        execution: graphql-core collects a selection once per execution for all the objects of a list
        (``collect_subfields`` is memoised on the same field group), so the same grouped field set comes
        back for every node of a page, with ``@skip``/``@include`` and fragments already applied."""
        plans = self._plans
        if plans is None:
            plans = self._plans = {}
        entry = plans.get(id(grouped_field_set))
        if entry is not None and entry[0] is grouped_field_set and entry[1] is parent_type:
            return entry[2]
        leaves, reads = plain_leaves(parent_type), read_fields(parent_type)
        steps: list[Step] = []
        run: list[tuple[str, FieldDetailsList, Leaf]] = []  # consecutive leaves read with ``getattr``
        for response_name, field_details_list in grouped_field_set.items():
            field_name = field_details_list[0].node.name.value
            leaf = leaves.get(field_name)
            read = reads.get(field_name)
            if leaf is not None and leaf[1] is getattr and field_name != "__typename":
                run.append((response_name, field_details_list, leaf))
                continue
            _end_run(run, steps)
            if field_name == "__typename":
                steps.append((TYPENAME, response_name, field_details_list, parent_type.name))
            elif leaf is not None:
                steps.append((LEAF, response_name, field_details_list, *leaf))
            elif read is None:
                steps.append((FIELD, response_name, field_details_list))
            elif read[0] == NODE_ID:
                named = read[2].type
                named = named.of_type if isinstance(named, GraphQLNonNull) else named
                if is_leaf_type(named) and read[2].type is not named:  # ``ID!``
                    steps.append((NODE_LEAF, response_name, field_details_list, named.coerce_output_value))
                else:
                    steps.append((READ, response_name, field_details_list, read))
            elif read[4] is not None:
                steps.append((SUBOBJECT, response_name, field_details_list, read, read[4], read[2].type, []))
            elif (item := _direct_list_item(read[2].type)) is not None and not _streamed(field_details_list):
                steps.append((SUBLIST, response_name, field_details_list, read, item, read[2].type, []))
            else:
                steps.append((READ, response_name, field_details_list, read))
        _end_run(run, steps)
        plans[id(grouped_field_set)] = (grouped_field_set, parent_type, steps)
        return steps

    def sub_selection(
        self, step: Step, object_type: GraphQLObjectType, position_context: Any
    ) -> list[Step] | None:
        """The plan of a SUBOBJECT or SUBLIST step's objects (their sub-selection's), or None when
        graphql-core must complete them (deferred fragments, incremental delivery under way)."""
        if position_context is not None:
            return None
        cached = step[6]
        if not cached:
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type, step[2])
            cached.append(None if new_defer_usages else self.plan(object_type, grouped_field_set))
        return cast(list[Step] | None, cached[0])

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        middleware = self.middleware_manager
        if middleware is not None and middleware.middlewares:  # strawberry passes an empty manager
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        steps = self.plan(parent_type, grouped_field_set)
        return self.run_plan(parent_type, steps, source_value, path, position_context)

    def run_plan(
        self,
        parent_type: GraphQLObjectType,
        steps: list[Step],
        source_value: Any,
        path: Path | None,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """``execute_fields`` by a plan: graphql-core's loop (``Executor.execute_fields``), a step per
        response key, so that the response keeps the selection's order. Any value a step does not take as
        it is goes to graphql-core. (No middleware: ``execute_fields`` hands that case to graphql-core.)"""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for step in steps:
                kind = step[0]
                if kind == LEAVES:
                    try:
                        values = step[3](source_value)
                    except Exception:  # each leaf on its own: the one that fails goes to graphql-core
                        values = [_attribute(source_value, name) for name in step[4]]
                    failed = step[6](values, results)
                    if failed:  # their places are kept in ``results``; graphql-core completes them
                        for index in failed:
                            response_name, field_details_list = step[5][index]
                            field_path = Path(path, response_name, parent_type.name)
                            result = self.execute_field(
                                parent_type, source_value, field_details_list, field_path, position_context
                            )
                            if result is Undefined:
                                del results[response_name]
                                continue
                            results[response_name] = result
                            if is_awaitable(result):
                                awaitable_fields.append(response_name)
                    continue
                response_name, field_details_list = step[1], step[2]
                if kind == LEAF:
                    try:
                        value = step[4](source_value, step[3])
                        if value is None:
                            if step[6]:
                                results[response_name] = None
                                continue
                        elif type(value) is step[7] and (step[7] is not int or _INT_MIN <= value <= _INT_MAX):
                            results[response_name] = value
                            continue
                        else:
                            value = step[5](value)
                            if value is not None and value is not Undefined:
                                results[response_name] = value
                                continue
                    except Exception:  # graphql-core's path raises it again, located, with its path
                        pass
                    read = None
                elif kind == TYPENAME:
                    results[response_name] = step[3]
                    continue
                elif kind == NODE_LEAF:
                    id_attribute = _node_id_attribute(type(source_value))
                    node_id = None if id_attribute is None else getattr(source_value, id_attribute, None)
                    if type(node_id) is str:
                        try:
                            value = step[3](GlobalID(parent_type.name, node_id))
                        except Exception:  # strawberry's resolver and graphql-core say what went wrong
                            value = None
                        if value is not None and value is not Undefined:
                            results[response_name] = value
                            continue
                    read = None
                elif kind == FIELD:
                    read = None
                else:
                    read = step[3]
                field_path = Path(path, response_name, parent_type.name)
                value = Undefined if read is None else _read_value(read, parent_type, source_value)
                if value is Undefined:
                    result = self.execute_field(
                        parent_type, source_value, field_details_list, field_path, position_context
                    )
                elif kind == SUBOBJECT:
                    result = self.complete_object(step, parent_type, field_path, value, position_context)
                elif kind == SUBLIST:
                    result = self.complete_list(step, parent_type, field_path, value, position_context)
                else:
                    result = self.complete_read(
                        parent_type, step[3], field_details_list, field_path, value, position_context
                    )
                if result is not Undefined:
                    results[response_name] = result
                    if type(result) is not dict and type(result) is not list and is_awaitable(result):
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

    def complete_object(
        self, step: Step, parent_type: GraphQLObjectType, path: Path, value: Any, position_context: Any
    ) -> Any:
        """A SUBOBJECT step's value: an object of its type goes straight to its sub-selection's plan (what
        ``complete_value`` → ``complete_object_value`` → ``collect_and_execute_subfields`` end in);
        anything else (null, an exception, another type) to ``complete_read``."""
        read, object_type, return_type, field_details_list = step[3], step[4], step[5], step[2]
        if value is None or isinstance(value, Exception) or not _is_type_of(object_type, value):
            return self.complete_read(parent_type, read, field_details_list, path, value, position_context)
        steps = self.sub_selection(step, object_type, position_context)
        if steps is None:
            return self.complete_read(parent_type, read, field_details_list, path, value, position_context)
        try:
            completed = self.run_plan(object_type, steps, value, path, None)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if type(completed) is not dict and self.is_awaitable(completed):
            return self._await_field(completed, return_type, field_details_list, path)
        return completed

    def complete_list(
        self, step: Step, parent_type: GraphQLObjectType, path: Path, value: Any, position_context: Any
    ) -> Any:
        """A SUBLIST step's value (``[T!]`` or ``[T!]!`` of a plain object type): a list or tuple whose
        items are all objects of the type — checked before any is completed — is completed item by item
        as ``complete_iterable_value`` does, each through the sub-selection's plan. Anything else goes to
        ``complete_read``, whole."""
        read, object_type, return_type, field_details_list = step[3], step[4], step[5], step[2]
        steps = None
        if (type(value) is list or type(value) is tuple) and all(
            item is not None and _is_type_of(object_type, item) for item in value
        ):
            steps = self.sub_selection(step, object_type, position_context)
        if steps is None:
            return self.complete_read(parent_type, read, field_details_list, path, value, position_context)
        item_type = (return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type).of_type
        is_awaitable = self.is_awaitable
        run_plan = self.run_plan
        completed_results: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            try:
                for index, item in enumerate(value):
                    item_path = path.add_key(index, None)
                    try:
                        completed = run_plan(object_type, steps, item, item_path, None)
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                        completed = None
                    if type(completed) is not dict and is_awaitable(completed):
                        awaitable_indices.append(index)
                        completed = self._await_field(completed, item_type, field_details_list, item_path)
                    completed_results.append(completed)
            except Exception:
                if awaitable_indices:
                    self.settle_in_background([completed_results[index] for index in awaitable_indices])
                raise
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if not awaitable_indices:
            return completed_results

        async def get_completed_results() -> list[Any]:
            if len(awaitable_indices) == 1:
                index = awaitable_indices[0]
                completed_results[index] = await completed_results[index]
            else:
                awaited = await gather_with_cancel(*(completed_results[i] for i in awaitable_indices))
                for index, result in zip(awaitable_indices, awaited, strict=True):
                    completed_results[index] = result
            return completed_results

        return self._await_field(get_completed_results(), return_type, field_details_list, path)

    async def _await_field(
        self,
        completed: Any,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        """An awaitable completion, its error handled at ``path`` as ``execute_field`` does."""
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

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


def _end_run(run: list[tuple[str, FieldDetailsList, Leaf]], steps: list[Step]) -> None:
    """The leaves gathered so far as steps: one LEAVES step for two or more (their values read at once by
    an ``attrgetter``), a LEAF step for one. Empties ``run``."""
    if len(run) == 1:
        response_name, field_details_list, leaf = run[0]
        steps.append((LEAF, response_name, field_details_list, *leaf))
    elif run:
        names = tuple(leaf[0] for _, _, leaf in run)
        fields = tuple((name, details) for name, details, _ in run)
        shape = tuple((name, leaf[2], leaf[3], leaf[4]) for name, _, leaf in run)
        steps.append((LEAVES, None, None, attrgetter(*names), names, fields, _compiled_run(shape)))
    run.clear()


_RUNS: dict[tuple[Any, ...], Callable[[Any, dict[str, Any]], tuple[int, ...] | None]] = {}
"""Compiled runs of leaves by their shape (response names, coercions, nullability, unchanged types): made
once per process for each shape the documents it answers have; bounded (``_MAX_RUNS``)."""
_MAX_RUNS = 2048


def _compiled_run(shape: tuple[Any, ...]) -> Callable[[Any, dict[str, Any]], tuple[int, ...] | None]:
    """A function that puts a run's values into ``results`` as the LEAVES step's loop would: each value
    passed as it is (an unchanged type), coerced, or null (a nullable field). Whatever it does not take
    — null for a non-null field, a value that does not coerce, ``Undefined`` — keeps its place in
    ``results`` and its index is returned, for graphql-core's ``execute_field``. One function per shape,
    the leaves unrolled: no per-leaf loop, unpacking or checks a leaf's type cannot need."""
    compiled = _RUNS.get(shape)
    if compiled is not None:
        return compiled
    lines = ["def run(values, results):", "    failed = None"]
    namespace: dict[str, Any] = {"Undefined": Undefined}
    for index, (response_name, coerce, nullable, unchanged) in enumerate(shape):
        key = repr(response_name)
        namespace[f"coerce_{index}"] = coerce
        lines.append(f"    value = values[{index}]")
        if unchanged is not None:
            namespace[f"type_{index}"] = unchanged
            check = f"type(value) is type_{index}"
            if unchanged is int:
                check += f" and {_INT_MIN} <= value <= {_INT_MAX}"
            lines += [f"    if {check}:", f"        results[{key}] = value", "    el" + "if value is None:"]
        else:
            lines.append("    if value is None:")
        lines += [
            f"        results[{key}] = None",
            *(() if nullable else (f"        failed = (failed or ()) + ({index},)",)),
            "    else:",
            "        try:",
            f"            value = coerce_{index}(value) if value is not Undefined else None",
            "        except Exception:",
            "            value = None",
            f"        results[{key}] = value",
            "        if value is None or value is Undefined:",
            f"            failed = (failed or ()) + ({index},)",
        ]
    lines.append("    return failed")
    exec(compile("\n".join(lines), f"<leaves {len(shape)}>", "exec"), namespace)
    compiled = namespace["run"]
    if len(_RUNS) >= _MAX_RUNS:
        _RUNS.clear()
    _RUNS[shape] = compiled
    return compiled


def _attribute(source: Any, name: str) -> Any:
    """``getattr``, or ``Undefined`` when it raises (the field's own path raises it again)."""
    try:
        return getattr(source, name)
    except Exception:
        return Undefined


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


def _is_type_of(object_type: GraphQLObjectType, value: Any) -> bool:
    """``complete_object_value``'s check, for a ``direct_object`` type (no ``is_type_of`` or strawberry's
    own, which ignores the info)."""
    is_type_of = object_type.is_type_of
    return is_type_of is None or is_type_of(value, _NO_INFO) is True


def _direct_list_item(field_type: GraphQLOutputType) -> GraphQLObjectType | None:
    """The object type of a ``[T!]`` or ``[T!]!`` field whose items ``direct_object`` completes."""
    list_type = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if not isinstance(list_type, GraphQLList) or not isinstance(list_type.of_type, GraphQLNonNull):
        return None
    return direct_object(list_type.of_type)


def _streamed(field_details_list: FieldDetailsList) -> bool:
    """Whether a list field carries ``@stream`` (incremental delivery: graphql-core's own path)."""
    return any(
        directive.name.value == "stream"
        for details in field_details_list
        for directive in details.node.directives or ()
    )
