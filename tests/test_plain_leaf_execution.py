"""Plain leaf fields are read in place (``legetime.schema.execution``), and nothing a client sees changes:
the same data in the same order, the same errors at the same paths, null propagation as the spec says."""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from graphql.execution import Executor

from legetime.schema.build import build_schema
from legetime.schema.execution import NOT_LOADED, PRELOADED, PlainLeafExecutor, plain_leaves, read_fields


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    count: int
    colour: Colour
    note: str | None
    broken: int  # a wrong value below: not an int

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    async def later(self) -> str:
        return f"{self.name}!"


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a", count=1, colour=Colour.RED, note=None, broken=2)]

    @strawberry.field
    def missing(self) -> list[Item]:
        return [Item(name=None, count=3, colour=Colour.RED, note="n", broken=4)]  # type: ignore[arg-type]

    @strawberry.field
    def huge(self) -> list[Item]:  # 2**40 is no GraphQL Int: graphql-core's error, in the middle of a run
        return [Item(name="h", count=2**40, colour=Colour.RED, note="n", broken=6)]

    @strawberry.field
    def wrong(self) -> Item | None:
        return Item(name="w", count=5, colour=Colour.RED, note=None, broken="not a number")  # type: ignore[arg-type]


def _run(executor: type[Executor] | None, query: str) -> dict[str, Any]:
    schema = strawberry.Schema(query=Query, execution_context_class=executor)
    result = asyncio.run(schema.execute(query))
    errors = [{"message": e.message, "path": e.path} for e in result.errors or []]
    return {"data": result.data, "errors": errors}


@pytest.mark.parametrize(
    "query",
    [
        "{ items { later note shout n: name count colour again: name } }",  # slow, fast, slow, aliased fast …
        "{ missing { count name } }",  # a non-null leaf without a value: an error that nulls the list item
        "{ wrong { name broken } }",  # a value that does not coerce: graphql-core's message, its path
        "{ huge { name count colour note } }",  # an int beyond 32 bits between leaves that pass
        "{ items { a: note b: colour c: count d: name } }",  # a run of aliases: null, enum, int, string
        "{ items { name ...F } } fragment F on Item { count colour }",
    ],
)
def test_the_answer_is_graphql_cores_own(query: str) -> None:
    assert _run(PlainLeafExecutor, query) == _run(None, query)


def test_errors_keep_their_paths_and_propagate_nulls() -> None:
    missing = _run(PlainLeafExecutor, "{ missing { count name } }")
    assert missing["data"] is None  # [Item!]! : the null reaches the root
    assert missing["errors"][0]["path"] == ["missing", 0, "name"]
    wrong = _run(PlainLeafExecutor, "{ wrong { name broken } }")
    assert wrong["data"] == {"wrong": None}
    assert wrong["errors"][0]["path"] == ["wrong", "broken"]
    assert "Int cannot represent non-integer value" in wrong["errors"][0]["message"]


def test_plain_leaves_take_no_resolver_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of it: a plain leaf costs no resolve info (a field with a resolver still does)."""
    resolved: list[str] = []
    original = PlainLeafExecutor.build_resolve_info

    def counting(self: PlainLeafExecutor, field_def: Any, nodes: Any, parent: Any, path: Any) -> Any:
        resolved.append(f"{parent.name}.{nodes[0].name.value}")
        return original(self, field_def, nodes, parent, path)

    monkeypatch.setattr(PlainLeafExecutor, "build_resolve_info", counting)
    _run(PlainLeafExecutor, "{ items { name count colour note shout } }")
    assert resolved == ["Query.items", "Item.shout"]


def test_only_basic_leaf_fields_qualify() -> None:
    schema = strawberry.Schema(query=Query)
    leaves = plain_leaves(schema._schema.type_map["Item"])  # type: ignore[arg-type]
    assert sorted(leaves) == ["broken", "colour", "count", "name", "note"]  # not shout, not later


def test_the_platform_schema_uses_it(platform: Any) -> None:
    schema = build_schema(platform)
    assert schema.execution_context_class is PlainLeafExecutor
    case_leaves = plain_leaves(schema._schema.type_map["Case"])  # type: ignore[arg-type]
    assert {"number", "status", "createdAt"} <= set(case_leaves)
    assert "patient" not in case_leaves and "id" not in case_leaves  # resolvers


# --- fields read without their resolver: objects, relay ids, values loaded beforehand -------------------


@strawberry.type
class Tag:
    label: str


@strawberry.type
class Thing(strawberry.relay.Node):
    thing_id: strawberry.relay.NodeID[str]
    tag: Tag
    maybe_tag: Tag | None
    tags: list[Tag]
    _owner: strawberry.Private[Any] = NOT_LOADED

    @strawberry.field(graphql_type=Tag, metadata={PRELOADED: "_owner"})
    def owner(self) -> Any:
        return self._owner if self._owner is not NOT_LOADED else Tag(label="loaded late")


@strawberry.type
class NodeQuery:
    @strawberry.field
    def things(self) -> list[Thing]:
        return [
            Thing(
                thing_id="1", tag=Tag(label="a"), maybe_tag=None, tags=[Tag(label="b")], _owner=Tag(label="o")
            ),
            Thing(thing_id="2", tag=Tag(label="c"), maybe_tag=Tag(label="d"), tags=[]),
        ]

    @strawberry.field
    def broken(self) -> list[Thing | None]:
        return [
            Thing(thing_id="3", tag=None, maybe_tag=None, tags=[]),  # type: ignore[arg-type]
            Thing(thing_id="4", tag=Tag(label="e"), maybe_tag="not a tag", tags=[], _owner=None),  # type: ignore[arg-type]
        ]

    @strawberry.field
    def odd(self) -> list[Thing | None]:
        """Lists of objects that are not all there: an item's error, a missing item, a wrong item."""
        return [
            Thing(thing_id="5", tag=Tag(label="f"), maybe_tag=None, tags=[Tag(label="g"), Tag(label=None)]),  # type: ignore[arg-type]
            Thing(thing_id="6", tag=Tag(label="h"), maybe_tag=None, tags=[Tag(label="i"), None]),  # type: ignore[list-item]
            Thing(thing_id="7", tag=Tag(label="j"), maybe_tag=None, tags=[Tag(label="k"), "not a tag"]),  # type: ignore[list-item]
            Thing(thing_id="8", tag=Tag(label="l"), maybe_tag=None, tags=(Tag(label="m"),)),  # type: ignore[arg-type]
        ]

    @strawberry.field
    async def later_things(self) -> list[Thing]:
        return self.things()


def _run_nodes(
    executor: type[Executor] | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema = strawberry.Schema(query=NodeQuery, execution_context_class=executor)
    result = asyncio.run(schema.execute(query, variable_values=variables))
    errors = sorted((e.message, str(e.path)) for e in result.errors or [])
    return {"data": result.data, "errors": errors}


@pytest.mark.parametrize(
    "query",
    [
        "{ things { id tag { label } maybeTag { label } tags { label } owner { label } } }",
        "{ things { a: id b: id t: tag { l: label } ...on Thing { owner { label } } } }",
        "{ broken { id tag { label } } }",  # a non-null object that is missing: the item is nulled
        "{ broken { maybeTag { label } } }",  # an object of the wrong type: graphql-core's error
        "{ broken { owner { label } } }",  # a value loaded as null for a non-null field
    ],
)
def test_fields_read_without_their_resolver_answer_as_graphql_core(query: str) -> None:
    assert _run_nodes(PlainLeafExecutor, query) == _run_nodes(None, query)


# --- the plans: each node of a list completed by the steps made for its selection ----------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ things { __typename id t: __typename tags { __typename label } } }", None),
        # aliases, the same field twice, fragments spread and inline, in the selection's order
        (
            "{ things { x: tags { l: label } tags { label } ...F ... on Thing { id x: tags { l: label } } } }"
            " fragment F on Thing { tag { label } id }",
            None,
        ),
        # @skip/@include with variables: the plan follows what graphql-core collected for this request
        (
            "query($s: Boolean!, $i: Boolean!) { things { id @skip(if: $s) tag @include(if: $i) { label }"
            " tags { label @include(if: $i) __typename } } }",
            {"s": True, "i": False},
        ),
        (
            "query($s: Boolean!, $i: Boolean!) { things { id @skip(if: $s) tag @include(if: $i) { label }"
            " tags { label @include(if: $i) __typename } } }",
            {"s": False, "i": True},
        ),
        # a list item's error nulls the item, then the list, then the nearest nullable parent; a missing
        # item and an item of another type are graphql-core's errors; a tuple is a list
        ("{ odd { id tags { label } } }", None),
        ("{ odd { tag { label } maybeTag { label } } tags: odd { tags { __typename } } }", None),
        ("{ laterThings { id tags { label } owner { label } } }", None),
        ("{ broken { id tag { label } tags { label } } }", None),
    ],
)
def test_plans_answer_as_graphql_core(query: str, variables: dict[str, Any] | None) -> None:
    assert _run_nodes(PlainLeafExecutor, query, variables) == _run_nodes(None, query, variables)


def test_a_deferred_fragment_is_graphql_cores() -> None:
    """Incremental delivery is not planned (``sub_selection``): the same answer, or as here, where the
    schema does not enable it, the same refusal as graphql-core's."""
    query = "{ things { id ... @defer { tags { label } } } }"
    assert _run_nodes(PlainLeafExecutor, query) == _run_nodes(None, query)


def test_a_page_of_objects_builds_no_resolve_info(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the plans: a list's objects, their objects and node ids cost no resolve info."""
    resolved: list[str] = []
    original = PlainLeafExecutor.build_resolve_info

    def counting(self: PlainLeafExecutor, field_def: Any, nodes: Any, parent: Any, path: Any) -> Any:
        resolved.append(f"{parent.name}.{nodes[0].name.value}")
        return original(self, field_def, nodes, parent, path)

    monkeypatch.setattr(PlainLeafExecutor, "build_resolve_info", counting)
    _run_nodes(PlainLeafExecutor, "{ things { id tag { label } tags { label } owner { label } } }")
    assert resolved == ["NodeQuery.things", "Thing.owner"]  # the second thing's owner was not loaded


def test_read_fields_are_objects_node_ids_and_preloaded_values() -> None:
    schema = strawberry.Schema(query=NodeQuery)
    reads = read_fields(schema._schema.type_map["Thing"])  # type: ignore[arg-type]
    assert {name: read[0] for name, read in reads.items()} == {
        "id": "node_id",
        "tag": "object",
        "maybeTag": "object",
        "tags": "object",
        "owner": PRELOADED,
    }
