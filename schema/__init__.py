"""The one GraphQL schema (strawberry) and the ASGI app (Starlette) that serves it.

schema imports core; core never imports schema.
"""
