"""The integrator guide (docs/providers.md) documents every provider and every one of its settings."""

from __future__ import annotations

import pytest
from pydantic import Field, SecretStr

from legetime.cli import PROVIDERS_GUIDE, default_offered_providers
from legetime.core.platform.providers import Capability, ProviderSettings, ProviderSpec
from legetime.schema.settings_reference import BEGIN, END, providers_markdown, replace_block, setting_rows
from tests.cli import run_cli

SPECS = default_offered_providers()


def test_the_settings_reference_in_the_guide_is_up_to_date() -> None:
    guide = PROVIDERS_GUIDE.read_text()
    assert guide == replace_block(guide, providers_markdown(SPECS)), (
        "docs/providers.md is out of date: run `legetime providers --write-docs`"
    )


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_every_offered_provider_is_in_the_guide_with_every_setting(spec: ProviderSpec) -> None:
    guide = PROVIDERS_GUIDE.read_text()
    overview, reference = guide.split(BEGIN)
    assert f"| `{spec.name}` |" in overview, f"add {spec.name!r} to the table of providers in the guide"
    for row in setting_rows(spec):
        assert f"| `{row.variable}` |" in reference
        assert row.description, f"{row.variable}: give the setting a description= (it is the documentation)"


def test_every_linked_provider_guide_exists() -> None:
    guide = PROVIDERS_GUIDE.read_text()
    docs = PROVIDERS_GUIDE.parent
    for spec in SPECS:
        row = next(
            line
            for line in guide.splitlines()
            if line.startswith(f"| {spec.capability.value} | `{spec.name}` |")
        )
        assert "](providers/" in row, f"link {spec.name!r} to its guide in docs/providers/"
    for target in {part.split(")")[0] for part in guide.split("](")[1:]}:
        assert (docs / target).exists(), f"the guide links to {target}, which does not exist"


class _Example(ProviderSettings):
    model_config = ProviderSettings.model_config | {"env_prefix": "LEGETIME_EXAMPLE_"}

    api_key: SecretStr = Field(description="The key | with a pipe.")
    base_url: str = Field(default="https://api.example", description="Where the API is.")
    retries: int | None = Field(default=None, description="How often.")
    scopes: list[str] = Field(default_factory=lambda: ["openid"], description="Scopes.")


def _example_spec() -> ProviderSpec:
    return ProviderSpec(Capability.PAYMENT, "example", lambda s, c: None, settings_model=_Example)


def test_a_settings_row_says_variable_type_default_and_whether_secret() -> None:
    rows = {row.variable.removeprefix("LEGETIME_EXAMPLE_"): row for row in setting_rows(_example_spec())}
    assert rows["API_KEY"].secret and rows["API_KEY"].default == "**required**"
    assert rows["BASE_URL"].default == "`https://api.example`" and not rows["BASE_URL"].secret
    assert rows["RETRIES"].kind == "integer" and rows["RETRIES"].default == "—"
    assert rows["SCOPES"].default == "`['openid']`" and rows["SCOPES"].kind == "list of string (JSON)"
    markdown = providers_markdown([_example_spec()])
    assert "The key \\| with a pipe." in markdown  # a pipe does not break the table
    assert "Chosen with `LEGETIME_PAYMENT_PROVIDERS`" in markdown


def test_the_block_needs_its_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        replace_block("# A guide without markers\n", "x")
    assert replace_block(f"a\n{BEGIN}\nold\n{END}\nb", "new\n") == f"a\n{BEGIN}\n\nnew\n\n{END}\nb"


def test_legetime_providers_shows_every_setting() -> None:
    result = run_cli("providers")
    assert result.returncode == 0, result.stderr
    assert "LEGETIME_PAYMENTS_FAKE_WEBHOOK_SECRET" in result.stdout
    markdown = run_cli("providers", "--markdown")
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout == providers_markdown(SPECS)
