"""Swedish patients (issue 13, "Go live"): a person verified by Swedish BankID logs in, opens a case for
herself and — under the Swedish rules of ``legetime.core.identity.countries`` — for her child, through
GraphQL, with the ``bankid-se`` provider against its local fake of BankID's RP API (mutual TLS).

The user's part in the BankID app is played through the fake's controls: she scans the QR code the
challenge shows (the fake checks it the documented way) and confirms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from legetime.core.consultation.access import as_patient, load_case
from legetime.core.demo import DEMO_PEOPLE
from legetime.core.identity import auth
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.swedish_personal_number import luhn_check_digit
from legetime.core.platform.config import Settings
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.errors import NotFound
from legetime.core.platform.providers.identity import AssuranceLevel, VerifiedIdentity
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from legetime.schema.mutation import global_uuid
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.appointment_stack import SURGERY, AppointmentStack
from tests.conftest import seed_demo
from tests.fakes.bankid_se import BankIdSeFake, FakeUser
from tests.fakes.certificates import make_pki
from tests.fakes.server import Tls, serve
from tests.migrated import upgrade
from tests.support import synthetic_national_id
from tests.test_events import Recorder

CLINICIAN = DEMO_PEOPLE[0].national_id
OPERATOR = DEMO_PEOPLE[1].national_id
NORWEGIAN_MOTHER = DEMO_PEOPLE[2].national_id
ASTRID = FakeUser("199001012385", "Astrid", "Lindqvist")  # Luhn-valid, born 1 January 1990
CASE = (
    "query($id: ID!) { case(id: $id) { status patient { givenName age } messages { kind authorRole body } } }"
)

OSLO = ZoneInfo("Europe/Oslo")


def personnummer(born: date, birth_number: int = 242) -> str:
    """A valid 12-digit Swedish personnummer for a birth date (Luhn over the last ten digits)."""
    nine = f"{born:%y%m%d}{birth_number:03d}"
    return f"{born:%Y%m%d}{birth_number:03d}{luhn_check_digit(nine)}"


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@dataclass
class World:
    api: Api
    fake: BankIdSeFake
    platform: Platform


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The platform with the simulated Norwegian BankID (staff, Norwegian families) and Swedish BankID
    pointed at its fake, configured through the environment as an integrator does."""
    pki = make_pki(tmp_path / "pki")
    fake = BankIdSeFake(user=ASTRID)
    with serve(fake.app, tls=Tls(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)) as url:
        for name, value in {
            "BASE_URL": f"{url}/rp/v6.0",
            "CA_CERT": str(pki.ca_cert),
            "CLIENT_CERT": str(pki.client_cert),
            "CLIENT_KEY": str(pki.client_key),
            "END_USER_IP": "192.0.2.10",
        }.items():
            monkeypatch.setenv(f"LEGETIME_BANKID_SE_{name}", value)
        settings = Settings(data_dir=tmp_path / "data", identity_providers=["bankid-test", "bankid-se"])
        upgrade(settings.resolved_database_url)
        seed_demo(settings)
        platform = Platform.create(settings, load_entry_points=False)
        with TestClient(create_app(platform)) as client:
            yield World(Api(client), fake, platform)


def swedish_login(world: World, user: FakeUser) -> str:
    """She chooses Swedish BankID, scans the QR code with the app and confirms; the frontend polls."""
    api = world.api
    world.fake.user = user
    started = api.ok("startLogin", {"provider": "bankid-se"}, "handle qrData pollIntervalSeconds")
    assert started["pollIntervalSeconds"] == 1.0
    assert world.fake.scan(started["qrData"]), "the fake refused the QR code"
    poll = {"handle": started["handle"], "params": {"launch": "qr"}}
    for _ in range(5):
        done = api.ok("completeLogin", poll, "token pending message me { givenName familyName }")
        if done["token"]:
            assert done["me"] == {"givenName": user.given_name, "familyName": user.surname}
            return str(done["token"])
        assert done["pending"] and done["message"]
    raise AssertionError("the Swedish BankID login did not complete")


def submit(api: Api, case_id: str, token: str, *, for_child: bool) -> None:
    answers = complete_answers(api, for_child=for_child)
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", token)
    version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
    consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": version, "caseId": case_id}
    api.ok("grantConsent", consent, "consent { granted }", token)
    submitted = api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "se-1"}, SUBMIT_FIELDS, token)
    assert submitted["case"]["status"] == "SUBMITTED"
    assert submitted["case"]["payment"]["authorized"] == 35000


def run(platform: Platform, coroutine: Any) -> Any:
    """Core code against the platform's database, from the test's thread (an event loop of its own)."""

    async def isolated() -> Any:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            return await coroutine(fresh)
        finally:
            await fresh.close()

    return asyncio.run(isolated())


# --- herself ---------------------------------------------------------------------------------------------


def test_a_swedish_patient_completes_a_consultation(world: World) -> None:
    """Swedish BankID → a case for herself → answers → submit → the demo clinician answers → she reads the
    answer and closes the case."""
    api = world.api
    astrid = swedish_login(world, ASTRID)
    me = api.gql("{ me { nationalId givenName birthDate roles } }", astrid)["me"]
    assert me == {
        "nationalId": ASTRID.personal_number,
        "givenName": "Astrid",
        "birthDate": "1990-01-01",
        "roles": ["patient"],
    }

    # A Swedish mobile number, written with its country code, for the SMS notices.
    phone = api.ok("updateMyPhone", {"phone": "+46 70 123 45 67"}, "me { phone }", astrid)
    assert phone["me"]["phone"] == "+46701234567"
    started = api.ok("startCase", {}, "case { id status patient { givenName } }", astrid)["case"]
    assert started["status"] == "DRAFT" and started["patient"]["givenName"] == "Astrid"
    case_id = started["id"]
    submit(api, case_id, astrid, for_child=False)

    clinician = api.login(CLINICIAN)  # the Norwegian demo clinician, through the simulated BankID
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    answer = {
        "caseId": case_id,
        "body": "Hvile, drikke godt og ta kontakt igjen om en uke.",
        "outcome": "ADVICE",
    }
    answered = api.ok("answerCase", answer, "case { status }", clinician)
    assert answered["case"]["status"] == "ANSWERED"

    seen = api.gql(CASE, astrid, id=case_id)["case"]
    assert seen["status"] == "ANSWERED"
    assert seen["messages"] == [
        {
            "kind": "ANSWER",
            "authorRole": "CLINICIAN",
            "body": "Hvile, drikke godt og ta kontakt igjen om en uke.",
        }
    ]
    assert api.ok("closeCase", {"caseId": case_id}, "case { status }", astrid)["case"]["status"] == "CLOSED"

    # Logging in again finds the same person (her personnummer's lookup hash), not a new one.
    again = swedish_login(world, ASTRID)
    mine = api.gql("{ myCases(first: 10) { edges { node { id } } } }", again)["myCases"]["edges"]
    assert [edge["node"]["id"] for edge in mine] == [case_id]


def test_a_samordningsnummer_logs_in_too(world: World) -> None:
    visitor = FakeUser("199001612382", "Erik", "Svensson")  # day 61: samordningsnummer, born 1 January 1990
    token = swedish_login(world, visitor)
    me = world.api.gql("{ me { nationalId birthDate } }", token)["me"]
    assert me == {"nationalId": "199001612382", "birthDate": "1990-01-01"}


# --- her phone number ------------------------------------------------------------------------------------


def set_phone(api: Api, token: str, phone: str, country: str | None = None) -> dict[str, Any]:
    wanted = {"phone": phone} if country is None else {"phone": phone, "country": country}
    return api.mutate("updateMyPhone", wanted, "me { phone }", token)


def test_a_number_without_country_code_is_of_her_own_country(world: World) -> None:
    """A Swedish patient types her number the Swedish way, a Norwegian patient the Norwegian way: each is
    read in the country that issued her national ID."""
    api = world.api
    astrid, sofie = swedish_login(world, ASTRID), api.login(NORWEGIAN_MOTHER)

    assert set_phone(api, astrid, "070-123 45 67") == {"me": {"phone": "+46701234567"}, "errors": []}
    assert set_phone(api, sofie, "412 34 567") == {"me": {"phone": "+4741234567"}, "errors": []}
    assert api.gql("{ me { phone } }", astrid)["me"]["phone"] == "+46701234567"

    # The other country's number without its country code is not a number of hers: refused, unchanged.
    for token, other in ((astrid, "412 34 567"), (sofie, "070-123 45 67")):
        refused = set_phone(api, token, other)
        assert refused["me"] is None
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("phone", "INVALID_PHONE")]
        assert "landkoden" in refused["errors"][0]["message"]
    assert api.gql("{ me { phone } }", astrid)["me"]["phone"] == "+46701234567"
    assert api.gql("{ me { phone } }", sofie)["me"]["phone"] == "+4741234567"


def test_a_number_with_its_country_code_is_read_as_written(world: World) -> None:
    api = world.api
    sofie = api.login(NORWEGIAN_MOTHER)
    for typed in ("+46 70 123 45 67", "0046 70 123 45 67"):  # her Swedish number, in Norway
        assert set_phone(api, sofie, typed)["me"] == {"phone": "+46701234567"}
    astrid = swedish_login(world, ASTRID)
    assert set_phone(api, astrid, "+47 412 34 567")["me"] == {"phone": "+4741234567"}


def test_a_swedish_landline_is_refused(world: World) -> None:
    api = world.api
    astrid = swedish_login(world, ASTRID)
    for landline in ("08-123 456 78", "+46 8 123 456 78"):  # Stockholm
        refused = set_phone(api, astrid, landline)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("phone", "INVALID_PHONE")], landline
        assert refused["errors"][0]["message"] == "Telefonnummeret kan ikke motta SMS. Oppgi et mobilnummer."
    assert api.gql("{ me { phone } }", astrid)["me"]["phone"] is None


def test_she_may_name_the_country_of_a_number_written_without_its_code(world: World) -> None:
    api = world.api
    sofie = api.login(NORWEGIAN_MOTHER)
    assert set_phone(api, sofie, "070-123 45 67", country="se")["me"] == {"phone": "+46701234567"}
    assert set_phone(api, sofie, "40 123 4567", country="FI")["me"] == {"phone": "+358401234567"}
    assert set_phone(api, sofie, "412 34 567", country="")["me"] == {"phone": "+4741234567"}  # her own
    assert set_phone(api, sofie, "+46 70 123 45 67", country="FI")["me"] == {"phone": "+46701234567"}

    for unknown in ("XX", "NOR", "47"):
        refused = set_phone(api, sofie, "070-123 45 67", country=unknown)
        assert refused["me"] is None
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("country", "INVALID")], unknown
        assert refused["errors"][0]["message"].startswith("Ukjent land.")
    assert api.gql("{ me { phone } }", sofie)["me"]["phone"] == "+46701234567"  # unchanged


def test_a_swedish_booker_gives_her_number_the_swedish_way(world: World) -> None:
    """Web booking: the number she gives with the booking is of her own country, too."""
    stack = AppointmentStack(world.api.client, world.platform, Recorder())
    astrid = swedish_login(world, ASTRID)
    booked = stack.book(None, SURGERY, token=astrid, phone="070-123 45 67")  # a request, no time
    assert booked["errors"] == [] and booked["appointment"]["status"] == "REQUESTED"
    assert world.api.gql("{ me { phone } }", astrid)["me"]["phone"] == "+46701234567"

    refused = stack.book(None, SURGERY, token=astrid, phone="412 34 567")
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("phone", "INVALID_PHONE")]


def test_the_on_duty_number_is_of_the_platforms_default_country(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The on-duty number is nobody's own: without a country code it is of ``LEGETIME_DEFAULT_PHONE_REGION``
    (Norway unless set), as a Swedish operator sets it."""
    monkeypatch.setenv("LEGETIME_DEFAULT_PHONE_REGION", "SE")
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    with TestClient(create_app(Platform.create(settings, load_entry_points=False))) as client:
        api = Api(client)
        operator = api.login(OPERATOR)
        on_duty = api.ok("setOnDutyPhone", {"phone": "070-123 45 67"}, "onDutyPhone { phone }", operator)
        assert on_duty["onDutyPhone"] == {"phone": "+46701234567"}
        refused = api.mutate("setOnDutyPhone", {"phone": "412 34 567"}, "onDutyPhone { phone }", operator)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("phone", "INVALID_PHONE")]
        on_duty = api.ok("setOnDutyPhone", {"phone": "+47 412 34 567"}, "onDutyPhone { phone }", operator)
        assert on_duty["onDutyPhone"] == {"phone": "+4741234567"}


# --- her child ---------------------------------------------------------------------------------------------


def test_a_swedish_guardian_opens_a_case_for_her_17_year_old_and_not_for_an_18_year_old(world: World) -> None:
    """Sweden: the vårdnadshavare acts for a child under 18 (föräldrabalken 6 kap. 2 och 11 §§); a
    Norwegian guardian stops at 16. A clinician may keep things from the Swedish guardian of a 17-year-old."""
    api = world.api
    astrid = swedish_login(world, ASTRID)
    today = utcnow().astimezone(OSLO).date()  # the service's day, as ages are counted
    seventeen = personnummer(years_before(today, 17) - timedelta(days=30))
    eighteen = personnummer(years_before(today, 18) - timedelta(days=1))

    child = {"child": {"nationalId": seventeen, "givenName": "Elsa", "guardianDeclared": True}}
    opened = api.ok("startCase", child, "case { id patient { givenName age } }", astrid)["case"]
    assert opened["patient"] == {"givenName": "Elsa", "age": 17}
    case_id = opened["id"]

    refused = api.mutate(
        "startCase", {"child": {"nationalId": eighteen, "guardianDeclared": True}}, "case { id }", astrid
    )
    assert refused["case"] is None
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("childNationalId", "CHILD_TOO_OLD")]
    assert refused["errors"][0]["message"].startswith("Barnet må være under 18 år.")

    # The same 17-year-old age, in Norway: refused (pasient- og brukerrettighetsloven, 16 years).
    norwegian = api.login(NORWEGIAN_MOTHER)
    teenager = synthetic_national_id(years_before(today, 17) - timedelta(days=30))
    too_old = api.mutate(
        "startCase", {"child": {"nationalId": teenager, "guardianDeclared": True}}, "case { id }", norwegian
    )
    assert [e["code"] for e in too_old["errors"]] == ["CHILD_TOO_OLD"]
    assert too_old["errors"][0]["message"].startswith("Barnet må være under 16 år.")

    submit(api, case_id, astrid, for_child=True)
    clinician = api.login(CLINICIAN)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    sent = api.ok("sendMessage", {"caseId": case_id, "body": "Till dig, Elsa."}, "message { id }", clinician)
    kept = {"messageId": sent["message"]["id"], "withheld": True}
    api.ok("setWithheldFromGuardian", kept, "case { id }", clinician)  # 17: within Sweden's 12–18
    query = "query($id: ID!) { case(id: $id) { messages { body } } }"
    assert api.gql(query, astrid, id=case_id)["case"]["messages"] == []

    # Her export carries the access log about the case she opened for her child (still under 18).
    export = api.gql("{ exportMyData }", astrid)["exportMyData"]
    number = export["cases"][0]["number"]
    assert any(e["about"] == "child" and e["case"] == number for e in export["accessLog"])


def test_a_child_must_be_of_the_guardians_country(world: World) -> None:
    api = world.api
    astrid = swedish_login(world, ASTRID)
    today = utcnow().astimezone(OSLO).date()  # the service's day, as ages are counted
    norwegian_child = synthetic_national_id(years_before(today, 8))
    swedish_child = personnummer(years_before(today, 8))

    cross = api.mutate(
        "startCase",
        {"child": {"nationalId": norwegian_child, "guardianDeclared": True}},
        "case { id }",
        astrid,
    )
    assert [(e["field"], e["code"]) for e in cross["errors"]] == [("childNationalId", "INVALID_NATIONAL_ID")]
    assert "norsk fødselsnummer" in cross["errors"][0]["message"]
    assert "svensk personnummer" in cross["errors"][0]["message"]

    norwegian = api.login(NORWEGIAN_MOTHER)
    other_way = api.mutate(
        "startCase",
        {"child": {"nationalId": swedish_child, "guardianDeclared": True}},
        "case { id }",
        norwegian,
    )
    assert [(e["field"], e["code"]) for e in other_way["errors"]] == [
        ("childNationalId", "INVALID_NATIONAL_ID")
    ]
    assert "svensk personnummer" in other_way["errors"][0]["message"]

    own = api.mutate(
        "startCase",
        {"child": {"nationalId": ASTRID.personal_number, "guardianDeclared": True}},
        "case { id }",
        astrid,
    )
    assert own["errors"][0]["message"] == "Barnets personnummer kan ikke være ditt eget."
    bad = api.mutate(
        "startCase",
        {"child": {"nationalId": "19900101-2386", "guardianDeclared": True}},
        "case { id }",
        astrid,
    )
    assert [(e["field"], e["code"]) for e in bad["errors"]] == [("childNationalId", "INVALID_NATIONAL_ID")]


def test_the_swedish_guardians_access_ends_on_the_childs_18th_birthday(world: World) -> None:
    """Read through the real session: the token's actor carries her country (from her stored
    personnummer), and the access rule cuts off at 18 for her, computed at request time."""
    api = world.api
    astrid = swedish_login(world, ASTRID)
    today = utcnow().astimezone(OSLO).date()  # the service's day, as ages are counted
    tomorrow = today + timedelta(days=1)
    child_id = personnummer(years_before(tomorrow, 18))  # turns 18 tomorrow
    child = {"child": {"nationalId": child_id, "guardianDeclared": True}}
    case_id = global_uuid(api.ok("startCase", child, "case { id }", astrid)["case"]["id"])

    async def reads_on(platform: Platform, day: date) -> tuple[str | None, bool]:
        async with platform.db.transaction() as session:
            actor = await auth.authenticate(session, platform, astrid)
            now = datetime.combine(day, datetime.min.time(), tzinfo=platform.settings.zone) + timedelta(
                hours=12
            )
            ctx = Ctx(session=session, platform=platform, actor=actor, now=now)
            try:
                await load_case(ctx, case_id, as_patient(actor, ctx.today))
                return actor.country, True
            except NotFound:
                return actor.country, False

    assert run(world.platform, lambda p: reads_on(p, today)) == ("SE", True)
    assert run(world.platform, lambda p: reads_on(p, tomorrow)) == ("SE", False)


def test_the_actor_knows_her_country(world: World) -> None:
    api = world.api
    tokens = {"SE": swedish_login(world, ASTRID), "NO": api.login(NORWEGIAN_MOTHER)}

    async def countries(platform: Platform) -> dict[str, str | None]:
        async with platform.db.transaction() as session:
            return {
                code: (await auth.authenticate(session, platform, token)).country
                for code, token in tokens.items()
            }

    assert run(world.platform, countries) == {"SE": "SE", "NO": "NO"}


def test_a_country_without_rules_cannot_log_in(world: World) -> None:
    danish = VerifiedIdentity(
        national_id="0101901234",
        given_name="Freja",
        family_name="Jensen",
        birth_date=date(1990, 1, 1),
        assurance_level=AssuranceLevel.HIGH,
        provider="mitid",
        country="DK",
    )

    async def attempt(platform: Platform) -> str:
        async with platform.db.transaction() as session:
            with pytest.raises(auth.LoginFailed) as caught:
                await auth.upsert_person(session, platform, danish)
            return caught.value.message

    assert "landet" in run(world.platform, attempt)
