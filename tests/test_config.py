"""Invalid configuration fails start-up with a message that names the variable to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from legetime.core.platform.config import Settings, load_settings
from legetime.core.platform.errors import ConfigError
from legetime.core.platform.runtime import Platform
from tests.cli import run_cli
from tests.support import REAL_PROVIDERS, ProductionProviders

PRODUCTION = {
    "LEGETIME_ENVIRONMENT": "production",
    "LEGETIME_SECRET_KEY": "k3Jq9-vXz2LmP0aR7tYb4NcW8eHs1UfG6dIo5QpV",  # as generated: random, 40 characters
    "LEGETIME_GRAPHIQL": "false",
}


def _setting_of(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        Platform.create(load_settings(), load_entry_points=False)
    return error.value.setting


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"LEGETIME_DATABASE_URL": "mysql://db/legetime"}, "LEGETIME_DATABASE_URL"),
        ({"LEGETIME_DATABASE_URL": "not a url"}, "LEGETIME_DATABASE_URL"),
        ({"LEGETIME_REDIS_URL": "localhost:6379"}, "LEGETIME_REDIS_URL"),
        ({"LEGETIME_PRICE_MINOR": "0"}, "LEGETIME_PRICE_MINOR"),
        ({"LEGETIME_CURRENCY": "kroner"}, "LEGETIME_CURRENCY"),
        ({"LEGETIME_TIMEZONE": "Europe/Bergen"}, "LEGETIME_TIMEZONE"),
        ({"LEGETIME_SLA_CUTOFF": "25:00"}, "LEGETIME_SLA_CUTOFF"),
        ({"LEGETIME_ENVIRONMENT": "staging"}, "LEGETIME_ENVIRONMENT"),
        ({"LEGETIME_PAYMENT_PROVIDERS": "fake,klarna"}, "LEGETIME_PAYMENT_PROVIDERS"),
        ({"LEGETIME_SMS_PROVIDERS": "twillio"}, "LEGETIME_SMS_PROVIDERS"),
        ({"LEGETIME_SMS_PROVIDER": "outbox"}, "LEGETIME_SMS_PROVIDER"),  # renamed: refused, not ignored
        ({"LEGETIME_IDENTITY_PROVIDERS": ""}, "LEGETIME_IDENTITY_PROVIDERS"),
        (
            {"LEGETIME_PAYMENTS_FAKE_AUTHORIZATION_TTL_HOURS": "a week"},
            "LEGETIME_PAYMENTS_FAKE_AUTHORIZATION_TTL_HOURS",
        ),
    ],
)
def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str) -> None:
    assert _setting_of(monkeypatch, env) == setting


def test_unknown_provider_lists_the_available_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_PAYMENT_PROVIDERS", "klarna")
    with pytest.raises(ConfigError, match=r"unknown payment provider 'klarna' \(available: ") as raised:
        Platform.create(load_settings(), load_entry_points=False)
    available = str(raised.value).split("(available: ")[1].rstrip(")").split(", ")
    assert "fake" in available and "klarna" not in available
    assert available == sorted(available)


@pytest.mark.parametrize(
    ("missing", "setting"),
    [("LEGETIME_SECRET_KEY", "LEGETIME_SECRET_KEY"), ("LEGETIME_GRAPHIQL", "LEGETIME_GRAPHIQL")],
)
def test_production_refuses_unsafe_defaults(
    monkeypatch: pytest.MonkeyPatch, missing: str, setting: str
) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    assert _setting_of(monkeypatch, env) == setting


def test_production_refuses_test_bankid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(
        ConfigError, match="'bankid-test' is a simulation and is refused in production"
    ) as error:
        Platform.create(load_settings(), load_entry_points=False)
    assert error.value.setting == "LEGETIME_IDENTITY_PROVIDERS"


@pytest.mark.parametrize("simulation", ["payment_providers", "sms_providers"])
def test_production_refuses_each_simulation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulation: str
) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    config = REAL_PROVIDERS | {simulation: ["fake"] if simulation == "payment_providers" else ["outbox"]}
    with pytest.raises(ConfigError, match="refused in production") as error:
        Platform.create(
            load_settings(**config), extra_plugins=[ProductionProviders()], load_entry_points=False
        )
    assert error.value.setting == f"LEGETIME_{simulation.upper()}"


def test_a_safe_production_configuration_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    platform = Platform.create(
        load_settings(**REAL_PROVIDERS), extra_plugins=[ProductionProviders()], load_entry_points=False
    )
    assert platform.settings.is_production and not platform.settings.graphiql


def test_lists_take_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_PAYMENT_PROVIDERS", " fake , other ")
    assert load_settings().payment_providers == ["fake", "other"]
    monkeypatch.setenv("LEGETIME_PAYMENT_PROVIDERS", '["fake"]')
    assert load_settings().payment_providers == ["fake"]


def test_embedded_default_is_a_sqlite_file_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'legetime.db'}"
    assert settings.redis_url is None


def test_development_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).master_secret()
    assert Settings(data_dir=tmp_path).master_secret() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_the_cli_names_the_setting_and_exits_2() -> None:
    result = run_cli("check", env={"LEGETIME_DATABASE_URL": "mysql://db/x"})
    assert result.returncode == 2
    assert "LEGETIME_DATABASE_URL" in result.stderr and "not supported" in result.stderr


def test_the_cli_refuses_test_bankid_in_production() -> None:
    result = run_cli("check", env=PRODUCTION)
    assert result.returncode == 2
    assert "LEGETIME_IDENTITY_PROVIDERS" in result.stderr


def test_check_masks_secrets(tmp_path: Path) -> None:
    result = run_cli("check", env={"LEGETIME_SECRET_KEY": "very-secret-value-0123456789abcdef"})
    assert result.returncode == 0, result.stderr
    assert "very-secret-value" not in result.stdout
    assert "**********" in result.stdout


def test_the_public_url_follows_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PORT=18801 make run`: the links in SMS and to images point where the server listens."""
    assert Settings().public_url == "http://127.0.0.1:8000"
    monkeypatch.setenv("PORT", "18801")
    assert Settings().public_url == "http://127.0.0.1:18801"
    monkeypatch.setenv("LEGETIME_PUBLIC_URL", "https://legetime.example")
    assert Settings().public_url == "https://legetime.example"


@pytest.mark.parametrize(
    "secret", ["x" * 40, "ab" * 20, "passwordpasswordpasswordpassword", "0123456789012345678901234567890123"]
)
def test_production_refuses_a_predictable_secret(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    assert _setting_of(monkeypatch, {**PRODUCTION, "LEGETIME_SECRET_KEY": secret}) == "LEGETIME_SECRET_KEY"


def test_introspection_is_off_in_production_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    assert load_settings().introspection is False
    monkeypatch.setenv("LEGETIME_INTROSPECTION", "true")
    assert load_settings().introspection is True
    monkeypatch.setenv("LEGETIME_ENVIRONMENT", "development")
    monkeypatch.delenv("LEGETIME_INTROSPECTION")
    assert load_settings().introspection is True


@pytest.mark.parametrize("origin", ["app.example.no", "https://app.example.no/path", "ftp://x.no"])
def test_a_cors_origin_must_be_an_origin(monkeypatch: pytest.MonkeyPatch, origin: str) -> None:
    assert _setting_of(monkeypatch, {"LEGETIME_CORS_ORIGINS": origin}) == "LEGETIME_CORS_ORIGINS"


def test_the_embedded_database_is_private(tmp_path: Path) -> None:
    result = run_cli("migrate", env={"LEGETIME_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / "data").glob("legetime.db*"))
    assert files and all(path.stat().st_mode & 0o077 == 0 for path in files), files


def test_keys_are_derived_once_per_process(tmp_path: Path) -> None:
    """Every request needs the session-token key: derived once (HKDF, and in development the secret
    file read), not per request. The file is not read again: keys stay those the process started with."""
    platform = Platform.create(Settings(data_dir=tmp_path / "data"), load_entry_points=False)
    key = platform.derive_key("session-token")
    (tmp_path / "data" / "secret_key").write_text("replaced-while-running")
    assert platform.derive_key("session-token") == key
    assert platform.derive_key("file-url") != key
