"""The start-up baseline: a minimal strawberry + uvicorn app (one query), started the way `legetime serve`
is (``python -m bench.minimal_app --port N``), timed to its first GraphQL answer."""

from __future__ import annotations

import argparse

import strawberry
import uvicorn
from strawberry.asgi import GraphQL


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hei"


app = GraphQL(strawberry.Schema(query=Query))

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
