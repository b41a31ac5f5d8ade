# ruff: noqa: E501  (the documents are the README's lines, as long as they are there)
"""The playground's saved operations: the README walkthrough's, in its order, and the staff's daily ones.

One source for two readers, so that they cannot drift apart:

- the README: each ```graphql block of "A consultation in GraphiQL" follows a marker
  ``<!-- example: <key> -->`` and is written from here by ``make docs`` (``python -m tools.docs readme``);
  a test fails when the README differs from what this module makes of it;
- the IDE: ``/graphql/ide/examples.json`` (``legetime.schema.playground``) lists them in its *Examples*
  pane; choosing one opens it in a new tab.

Placeholders such as ``<case id>`` are for the reader to replace with what an earlier step answered.
Every document is validated against the schema by the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"<!-- example: ([a-z0-9-]+) -->\n```graphql\n(.*?)```", re.S)
BLOCK = re.compile(r"```graphql\n", re.S)
WALKTHROUGH = "## A consultation in GraphiQL"


@dataclass(frozen=True)
class Example:
    key: str
    title: str
    who: str
    """Who runs it: the walkthrough's person, or the role it needs."""
    document: str
    variables: str = ""
    walkthrough: bool = False
    """A step of the README's walkthrough (written into the README), or one of the daily ones."""

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "title": self.title,
            "who": self.who,
            "query": self.document,
            "variables": self.variables,
            "walkthrough": self.walkthrough,
        }


def _step(key: str, title: str, who: str, document: str) -> Example:
    return Example(key, title, who, document.lstrip("\n"), walkthrough=True)


SOFIE, NORA, LARS = "Sofie (patient)", "Nora (clinician)", "Lars (operator)"

WALKTHROUGH_EXAMPLES = (
    _step(
        "invite-clinician",
        "0. Invite a clinician",
        LARS,
        """
mutation { inviteStaff(input: {nationalId: "14897800048", role: CLINICIAN, hprNumber: "9144889"}) {
  member { personId name roles { role hprNumber } } errors { field code message } } }
""",
    ),
    _step(
        "set-sms-sender",
        "0. Name the texts' sender",
        LARS,
        """
mutation { changePlatformSettings(input: {values: {sms_sender: "Klinikken"}}) {
  settings { name value source locked } errors { field code message } } }
""",
    ),
    _step(
        "start-login",
        "1. Start a login",
        SOFIE,
        """
mutation { startLogin(input: {nationalId: "17889200022"}) { handle message errors { field code message } } }
""",
    ),
    _step(
        "complete-login",
        "1. Complete the login",
        SOFIE,
        """
mutation { completeLogin(input: {handle: "<handle from above>"}) { token me { givenName roles } errors { code message } } }
""",
    ),
    _step(
        "follow-my-cases",
        "2. Follow her cases live",
        SOFIE,
        """
subscription { caseUpdates { caseId type status occurredAt } }
""",
    ),
    _step(
        "register-phone",
        "2. Register her phone",
        SOFIE,
        """
mutation { updateMyPhone(input: {phone: "412 34 567"}) { me { phone } errors { field code message } } }
""",
    ),
    _step(
        "start-case",
        "2. Start a case for her child",
        SOFIE,
        """
mutation {
  startCase(input: {child: {nationalId: "05921550016", givenName: "Ingrid", guardianDeclared: true}}) {
    case { id number status patient { givenName age } } errors { field code message } } }
""",
    ),
    _step(
        "questionnaire",
        "2. Read the questions",
        SOFIE,
        """
{ questionnaire { key version questions { id type text required audience choices { value label } shownIf { question equals } } } }
""",
    ),
    _step(
        "answer-questionnaire",
        "3. Answer the questions",
        SOFIE,
        """
mutation {
  answerQuestionnaire(input: {caseId: "<case id>", answers: [
    {questionId: "main_complaint", value: "Utslett på armen"}, {questionId: "duration", value: "1_3_days"},
    {questionId: "fever", value: false}, {questionId: "pain", value: 3}, {questionId: "seen_doctor_before", value: false},
    {questionId: "regular_medication", value: false}, {questionId: "allergies", value: false},
    {questionId: "child_weight", value: 32}, {questionId: "child_vaccinated", value: true},
    {questionId: "child_eats_drinks", value: true}]}) {
    case { answers } errors { field code message } } }
""",
    ),
    _step(
        "consent-storage",
        "3. Consent to storage",
        SOFIE,
        """
mutation { grantConsent(input: {purpose: COMMUNICATION_STORAGE, textVersion: "2026-01", caseId: "<case id>"}) { consent { granted } errors { field code message } } }
""",
    ),
    _step(
        "consent-ai-journal",
        "3. Consent to the AI journal draft",
        SOFIE,
        """
mutation { grantConsent(input: {purpose: AI_JOURNAL, textVersion: "2026-01", caseId: "<case id>"}) { consent { granted } errors { field code message } } }
""",
    ),
    _step(
        "submit-case",
        "3. Submit and pay",
        SOFIE,
        """
mutation { submitCase(input: {caseId: "<case id>", idempotencyKey: "first-try"}) {
  case { status slaDueAt payment { status authorized } }
  paymentAction { __typename ... on PaymentRedirect { url } }
  errors { field code message } } }
""",
    ),
    _step(
        "case-queue",
        "4. The queue",
        NORA,
        """
{ caseQueue(first: 10) { edges { node { id number status slaDueAt overdue patient { age } } } } }
""",
    ),
    _step(
        "claim-case",
        "4. Take the case",
        NORA,
        """
mutation { claimCase(input: {caseId: "<case id>"}) { case { status } errors { field code message } } }
""",
    ),
    _step(
        "ask-question",
        "4. Ask the patient a question",
        NORA,
        """
mutation { sendMessage(input: {caseId: "<case id>", body: "Klør det?"}) { case { status } errors { field code message } } }
""",
    ),
    _step(
        "reply",
        "5. Reply to the clinician",
        SOFIE,
        """
mutation { sendMessage(input: {caseId: "<case id>", body: "Ja, mest om kvelden."}) { case { status } errors { field code message } } }
""",
    ),
    _step(
        "answer-case",
        "6. Answer the case",
        NORA,
        """
mutation { answerCase(input: {caseId: "<case id>", body: "Bruk fuktighetskrem. Jeg vil se utslettet: bestill time.", outcome: PHYSICAL_EXAMINATION}) {
  case { status outcome } errors { field code message } } }
""",
    ),
    _step(
        "draft-journal-note",
        "6. Draft the journal note",
        NORA,
        """
mutation { draftJournalNote(input: {caseId: "<case id>"}) { errors { field code message } } }
""",
    ),
    _step(
        "journal-notes",
        "6. Read the journal draft",
        NORA,
        """
query { case(id: "<case id>") { journalNotes { id status text drafter drafterVersion } } }
""",
    ),
    _step(
        "approve-journal-note",
        "6. Approve the journal note",
        NORA,
        """
mutation { approveJournalNote(input: {noteId: "<note id>"}) { note { status approvedAt } errors { field code message } } }
""",
    ),
    _step(
        "read-answer",
        "7. Read the answer",
        SOFIE,
        """
query { case(id: "<case id>") { status messages { kind authorRole body } payment { status captured } } }
""",
    ),
    _step(
        "close-case",
        "7. Close the case",
        SOFIE,
        """
mutation { closeCase(input: {caseId: "<case id>"}) { case { status } errors { field code message } } }
""",
    ),
    _step(
        "operator-overview",
        "8. The operator overview",
        LARS,
        """
{ operatorOverview { byStatus { status count } openCases overdueCases answeredWithinSla medianResponseMinutes
  sms { caseNumber event to status attempts { provider sender } } jobs { name status attempts } } }
""",
    ),
    _step(
        "my-access-log",
        "9. Who has seen her data",
        SOFIE,
        """
{ myAccessLog(first: 5) { occurredAt actorName actorRole action reason } }
""",
    ),
    _step(
        "export-my-data",
        "9. Everything held about her",
        SOFIE,
        """
{ exportMyData }
""",
    ),
    _step(
        "withdraw-consent",
        "9. Withdraw the storage consent",
        SOFIE,
        """
mutation { withdrawConsent(input: {purpose: COMMUNICATION_STORAGE}) { consent { granted }
  erasure { cases messages images pending kept { what why } } errors { field code message } } }
""",
    ),
    _step(
        "save-clinic",
        "10. Open a clinic",
        LARS,
        """
mutation { saveClinic(input: {name: "Legetime Majorstuen", address: "Kirkeveien 64, 0364 Oslo"}) {
  clinic { id name } errors { field code message } } }
""",
    ),
    _step(
        "save-appointment-type",
        "10. What can be booked there",
        LARS,
        """
mutation { saveAppointmentType(input: {code: "undersokelse", name: "Undersøkelse hos lege", mode: IN_PERSON,
  minutes: 30, priceAmount: 95000, forms: [HEALTH_DECLARATION], directlyBookable: true}) {
  appointmentType { code price { formatted } } errors { field code message } } }
""",
    ),
    _step(
        "set-opening-hours",
        "10. The clinician's hours",
        LARS,
        """
mutation { setOpeningHours(input: {clinicId: "<clinic id>", hours: [
  {clinicianId: "<clinician id>", weekday: MONDAY, opens: "08:00:00", closes: "16:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]},
  {clinicianId: "<clinician id>", weekday: TUESDAY, opens: "08:00:00", closes: "16:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]},
  {clinicianId: "<clinician id>", weekday: WEDNESDAY, opens: "08:00:00", closes: "16:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]},
  {clinicianId: "<clinician id>", weekday: THURSDAY, opens: "08:00:00", closes: "16:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]},
  {clinicianId: "<clinician id>", weekday: FRIDAY, opens: "08:00:00", closes: "16:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]},
  {clinicianId: "<clinician id>", weekday: SATURDAY, opens: "10:00:00", closes: "14:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]},
  {clinicianId: "<clinician id>", weekday: SUNDAY, opens: "10:00:00", closes: "14:00:00", slotMinutes: 30, appointmentTypes: ["undersokelse"]}]}) {
  hours { weekday opens closes } errors { field code message } } }
""",
    ),
    _step(
        "refer-to-appointment",
        "11. Refer Ingrid to an examination",
        NORA,
        """
mutation { referToAppointment(input: {caseId: "<case id>", clinicId: "<clinic id>", appointmentType: "undersokelse"}) {
  appointment { id number status patient { givenName } } errors { field code message } } }
""",
    ),
    _step(
        "free-slots",
        "12. Free times",
        SOFIE,
        """
{ freeSlots(clinicId: "<clinic id>", appointmentType: "undersokelse", first: 3) { id startsAt clinician { name } } }
""",
    ),
    _step(
        "book-appointment-time",
        "12. Book one",
        SOFIE,
        """
mutation { bookAppointmentTime(input: {appointmentId: "<appointment id>", slotId: "<slot id>"}) {
  appointment { number status startsAt formsRequired } errors { field code message } } }
""",
    ),
    _step(
        "submit-health-declaration",
        "13. The health declaration",
        SOFIE,
        """
mutation { submitAppointmentForm(input: {appointmentId: "<appointment id>", kind: HEALTH_DECLARATION, answers: {
  height: 146, weight: 38, conditions: [], takes_medication: false, blood_thinners: false, has_allergies: false,
  previous_anaesthesia: false, family_anaesthesia_problems: false, pregnancy: "no", smoking: "never", snus: false,
  teeth: false}}) { appointment { status forms { kind submittedAt } } errors { field code message } } }
""",
    ),
    _step(
        "my-appointments",
        "13. Her appointments",
        SOFIE,
        """
{ myAppointments { number status startsAt clinic { name address } patient { givenName } forms { kind } } }
""",
    ),
)

OPERATOR, CLINICIAN, PRIVACY_OFFICER, ANYONE = "operator", "clinician", "privacy officer", "anyone logged in"

DAILY_EXAMPLES = (
    Example("who-am-i", "Who am I", ANYONE, "{ me { givenName familyName roles } }\n"),
    Example(
        "daily-overview",
        "Today's figures",
        OPERATOR,
        "{ operatorOverview { openCases overdueCases byStatus { status count } answeredWithinSla\n"
        "  medianResponseMinutes failedTexts accessLogChain { unchained oldestUnchainedAt } } }\n",
    ),
    Example(
        "overdue-cases",
        "Overdue cases in the queue",
        CLINICIAN,
        "{ caseQueue(first: 20, overdue: true) { edges { node { id number status slaDueAt overdue\n"
        "  patient { age } } } } }\n",
    ),
    Example(
        "sms-log",
        "SMS log: the latest texts",
        OPERATOR,
        "{ operatorOverview { sms(first: 20) { caseNumber event to status failureReason createdAt sentAt\n"
        "  attempts { provider sender status error } } smsUsage(days: 30) { provider texts segments delivered failed } } }\n",
    ),
    Example(
        "failed-texts",
        "SMS log: texts no provider delivered",
        OPERATOR,
        '{ operatorOverview { failedTexts sms(first: 20, status: "failed") { caseNumber event to failureReason\n'
        "  createdAt attempts { provider status error } } } }\n",
    ),
    Example(
        "failed-jobs",
        "Jobs that gave up",
        OPERATOR,
        '{ operatorOverview { jobs(first: 20, status: "failed") { id name status attempts lastError createdAt } } }\n',
    ),
    Example(
        "pending-jobs",
        "Jobs waiting for the broker",
        OPERATOR,
        '{ operatorOverview { jobs(first: 20, status: "pending") { id name status attempts createdAt } } }\n',
    ),
    Example(
        "retention-runs",
        "Retention runs",
        OPERATOR,
        "{ retentionRuns(first: 10) { rule trigger dryRun cases messages images storageFailures startedAt\n"
        "  finishedAt } }\n",
    ),
    Example(
        "staff",
        "Staff and their roles",
        OPERATOR,
        "{ staffMembers { personId name roles { role hprNumber since } } onDutyPhone { phone changedAt } }\n",
    ),
    Example(
        "access-log-review",
        "Access-log review: flagged entries",
        PRIVACY_OFFICER,
        "query Review($from: DateTime!, $to: DateTime!) {\n"
        "  accessLogReview(filter: {from: $from, to: $to}, first: 20, flaggedOnly: true) {\n"
        "    entries { occurredAt actor { name } actorRole patient { name } objectType action reason flags }\n"
        "    pageInfo { hasNextPage endCursor } } }\n",
        variables='{"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00"}',
    ),
)

EXAMPLES = (*DAILY_EXAMPLES, *WALKTHROUGH_EXAMPLES)
BY_KEY = {example.key: example for example in EXAMPLES}


def render_readme(readme: str) -> str:
    """The README with each marked ```graphql block written from its example."""

    def block(match: re.Match[str]) -> str:
        example = BY_KEY.get(match.group(1))
        if example is None:
            raise ValueError(f"README: no example {match.group(1)!r} in legetime.schema.playground_examples")
        return f"<!-- example: {example.key} -->\n```graphql\n{example.document}```"

    return MARKER.sub(block, readme)


def readme_problems(readme: str) -> list[str]:
    """What keeps the README's walkthrough from being this module's: unmarked blocks, missing or
    repeated examples, another order."""
    walkthrough = readme[readme.index(WALKTHROUGH) :]
    walkthrough = walkthrough[: walkthrough.find("\n## ", 1)] if "\n## " in walkthrough[1:] else walkthrough
    marked = [match.group(1) for match in MARKER.finditer(walkthrough)]
    problems = []
    if len(BLOCK.findall(walkthrough)) != len(marked):
        problems.append("a ```graphql block of the walkthrough has no <!-- example: … --> marker")
    expected = [example.key for example in WALKTHROUGH_EXAMPLES]
    if marked != expected:
        problems.append(f"the walkthrough's examples are {marked}, not {expected}")
    if render_readme(readme) != readme:
        problems.append("a block differs from its example: run `make docs`")
    return problems
