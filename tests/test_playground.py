"""The playground without a browser: our own page under a strict CSP, the vendored IDE served from the
platform with their pins and licences, the examples (valid against the schema, and the README's
walkthrough written from them), and nothing of it when GraphiQL is off. The browser itself:
tests/test_playground_browser.py."""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import parse, validate
from starlette.testclient import TestClient

from legetime.core.platform.config import Environment, Settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from legetime.schema.build import build_schema
from legetime.schema.headers import GRAPHIQL_CSP
from legetime.schema.playground import PREFIX, manifest, page
from legetime.schema.playground_examples import EXAMPLES, WALKTHROUGH_EXAMPLES, readme_problems
from tools import vendor_graphiql

ROOT = Path(__file__).resolve().parent.parent
HTML = {"Accept": "text/html"}


def _app(settings: Settings) -> TestClient:
    platform = Platform.create(settings, load_entry_points=False)
    return TestClient(create_app(platform, run_jobs_in_process=False))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _app(settings) as client:
        yield client


def _directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


def test_the_page_is_ours_under_a_strict_policy(client: TestClient) -> None:
    response = client.get("/graphql", headers=HTML)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy == GRAPHIQL_CSP
    directives = _directives(policy)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no inline script, no nonce needed, no CDN
    assert directives["style-src"][0] == "'self'" and "'unsafe-inline'" not in directives["style-src"]
    assert all(value.startswith("'sha256-") for value in directives["style-src"][1:])
    assert directives["connect-src"] == ["'self'"]
    assert directives["img-src"] == directives["font-src"] == ["'self'", "data:"]
    for name in ("frame-ancestors", "base-uri", "form-action"):
        assert directives[name] == ["'none'"]
    assert not re.search(r"https?:|wss?:|\*", policy), "a third-party origin or wildcard in the policy"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"

    html = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    addresses = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(address.startswith(f"{PREFIX}/") or address == "data:," for address in addresses), addresses


def test_the_assets_are_the_pinned_builds_served_with_long_caching(client: TestClient) -> None:
    html = client.get("/graphql", headers=HTML).text
    pinned = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', html)
    assert len(pinned) == 6  # react, react-dom, graphiql (js, css), the explorer plugin (js, css)
    for address, integrity in pinned:
        asset = client.get(address)
        assert asset.status_code == 200, address
        algorithm, digest = integrity.split("-", 1)
        assert base64.b64encode(hashlib.new(algorithm, asset.content).digest()).decode() == digest, address
        kind = "javascript" if address.endswith(".js") else "css"
        assert kind in asset.headers["content-type"], (address, asset.headers["content-type"])
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    own = re.findall(r'(?:src|href)="([^"]+/playground/playground\.(?:js|css)\?v=([0-9a-f]+))"', html)
    assert len(own) == 2
    for address, version in own:
        asset = client.get(address)
        assert asset.status_code == 200 and hashlib.sha256(asset.content).hexdigest().startswith(version)
    assert client.get(f"{PREFIX}/graphiql/graphiql-3.8.3/LICENSE").status_code == 200
    assert client.get(f"{PREFIX}/graphiql/graphiql-3.8.3/graphiql.min.js.map").status_code == 404
    assert client.get(f"{PREFIX}/../playground.py").status_code == 404


def test_the_vendored_files_match_their_pins_and_carry_their_licences() -> None:
    assert vendor_graphiql.check() == []
    assert {name: entry["version"] for name, entry in manifest().items()} == {
        package.name: package.version for package in vendor_graphiql.PACKAGES
    }
    for entry in manifest().values():
        licence = (vendor_graphiql.TARGET / entry["directory"] / "LICENSE").read_text()
        assert "MIT License" in licence or "Permission is hereby granted" in licence


def test_the_examples_are_served_and_valid_against_the_schema(client: TestClient) -> None:
    served = client.get(f"{PREFIX}/examples.json").json()
    assert [example["key"] for example in served] == [example.key for example in EXAMPLES]
    daily = {example["key"] for example in served if not example["walkthrough"]}
    assert {"daily-overview", "overdue-cases", "sms-log", "failed-jobs", "retention-runs"} <= daily
    assert "access-log-review" in daily
    with tempfile.TemporaryDirectory() as data_dir:
        schema = build_schema(
            Platform.create(Settings.defaults(data_dir=Path(data_dir)), load_entry_points=False)
        )
    for example in EXAMPLES:
        errors = validate(schema._schema, parse(example.document))
        assert not errors, (example.key, errors)


def test_the_readme_walkthrough_is_written_from_the_examples() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme_problems(readme) == [], "the README's walkthrough differs from the examples: `make docs`"
    assert len(WALKTHROUGH_EXAMPLES) == readme.count("<!-- example: ")


def test_back_from_bankid_the_page_renders(client: TestClient) -> None:
    """An OpenID Connect login returns to /graphql with code and state: the page, not a GraphQL answer."""
    response = client.get("/graphql?code=abc&state=xyz", headers=HTML)
    assert response.status_code == 200 and 'id="lt-login"' in response.text


def test_in_production_the_panel_is_for_staff(settings: Settings) -> None:
    production = settings.model_copy(update={"environment": Environment.PRODUCTION})
    assert 'data-staff-only="true"' in page(production)
    assert 'data-staff-only="false"' in page(settings)


def test_nothing_of_it_when_graphiql_is_off(settings: Settings) -> None:
    with _app(settings.model_copy(update={"graphiql": False})) as client:
        assert client.get("/graphql", headers=HTML).status_code == 404
        assert client.get(f"{PREFIX}/examples.json").status_code == 404
        assert client.get(f"{PREFIX}/playground/playground.js").status_code == 404
