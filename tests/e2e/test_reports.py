"""Customer reports from the apps: the session checked by the identity service, the report a ticket triaged in
Slack, its status for the customer, and e-mail when it is received and when it is closed."""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.db.engine import make_engine
from bot.sandbox.identity_emulator import IdentityEmulator, create_identity_emulator
from bot.sandbox.mail_catcher import MailCatcher
from bot.sandbox.server_thread import ServerThread
from bot.settings import SANDBOX_IDENTITY_TOKEN
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, queue_drained
from tests.harness import WEBHOOK_TOKEN, BotProcess

JANE, JOHN, READONLY = "sandbox-session-jane", "sandbox-session-john", "sandbox-session-readonly"


@pytest.fixture
def identity() -> Iterator[tuple[IdentityEmulator, str]]:
    app = create_identity_emulator()
    with ServerThread(app) as server:
        yield app.state.emulator, f"{server.url}/introspect"


def identity_env(url: str) -> dict[str, str]:
    return {"TRIAGE_SESSION_INTROSPECTION_URL": url, "TRIAGE_SESSION_INTROSPECTION_TOKEN": SANDBOX_IDENTITY_TOKEN}


def report(subject: str = "Card payment fails", category: str = "billing", **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "description": "Tapping Pay shows an error.\nSecond line <!channel> *bold*",
        "category": category,
        "app": {"name": "Shop", "version": "4.2.0", "platform": "ios"},
        "metadata": {"device": "iPhone 15", "locale": "en_GB", "build": 4200, "beta": False},
        **extra,
    }


def post(bot: BotProcess, body: Any, session: str | None = JANE, **headers: str) -> httpx.Response:
    sent = {"X-Session-Id": session} if session else {}
    return httpx.post(f"{bot.url}/reports", json=body, headers=sent | headers, timeout=10)


def counts(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tickets = conn.execute(text("SELECT count(*) FROM tickets")).scalar_one()
            jobs = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        return int(tickets), int(jobs)
    finally:
        engine.dispose()


def test_refusals_change_nothing(
    make_bot: Any, emulators: Emulators, database_url: str, identity: tuple[IdentityEmulator, str]
) -> None:
    emulator, url = identity
    bot: BotProcess = make_bot(
        **identity_env(url), TRIAGE_REPORTS_PER_MINUTE="2", TRIAGE_REPORT_ATTACHMENT_BYTES="2048"
    )
    before = counts(database_url)

    def refused(response: httpx.Response, status: int, error: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"] == error
        assert counts(database_url) == before

    refused(post(bot, report(), session=None), 401, "no_session")
    refused(post(bot, report(), session="not-a-session"), 401, "invalid_session")
    refused(post(bot, report(), session="sandbox-session-expired"), 401, "invalid_session")
    refused(post(bot, report(), session="bad session id"), 401, "invalid_session")
    refused(post(bot, report(), session=READONLY), 403, "insufficient_scope")
    emulator.set_fault(status=503, retry_after=7, count=1)
    down = post(bot, report())
    refused(down, 503, "identity_unavailable")
    assert down.headers["Retry-After"] == "7"
    refused(
        httpx.post(
            f"{bot.url}/reports", content=b"{", headers={"X-Session-Id": JANE, "Content-Type": "application/json"}
        ),
        400,
        "invalid_json",
    )
    refused(
        httpx.post(
            f"{bot.url}/reports", content=b"subject=x", headers={"X-Session-Id": JANE, "Content-Type": "text/plain"}
        ),
        415,
        "unsupported_media_type",
    )
    refused(post(bot, {"subject": "x"}), 422, "invalid_request")
    refused(post(bot, report(metadata={f"k{i}": "v" for i in range(31)})), 422, "invalid_request")
    refused(post(bot, report(metadata={"nested": {"a": 1}})), 422, "invalid_request")
    bad_file = {"filename": "a.png", "content_type": "image/png", "data": "not base64!"}
    refused(post(bot, report(attachments=[bad_file])), 422, "invalid_request")
    big = {"filename": "a.log", "content_type": "text/plain", "data": base64.b64encode(b"x" * 4096).decode()}
    refused(post(bot, report(attachments=[big])), 413, "attachment_too_large")
    huge = httpx.post(
        f"{bot.url}/reports",
        content=b"x" * 20_000_000,
        headers={"X-Session-Id": JANE, "Content-Type": "application/json"},
        timeout=30,
    )
    refused(huge, 413, "body_too_large")
    refused(post(bot, report(), **{"Idempotency-Key": "has space"}), 400, "bad_idempotency_key")

    # The same Idempotency-Key gives the first answer again and opens nothing new; another body with it is refused.
    first = post(bot, report(), **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    again = post(bot, report(), **{"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert post(bot, report("Other"), **{"Idempotency-Key": "k-1"}).json()["error"] == "idempotency_key_reused"
    # Another customer's key is their own.
    assert post(bot, report(), session=JOHN, **{"Idempotency-Key": "k-1"}).json()["id"] != first.json()["id"]

    # Two reports a minute each (as configured): the third is refused with Retry-After.
    assert post(bot, report("second")).status_code == 201
    limited = post(bot, report("third"))
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 61
    assert limited.json()["error"] == "rate_limited"
    assert counts(database_url)[0] == 3  # Jane's two and John's one
    queue_drained(database_url)

    # Status: one's own report, not anyone else's.
    ref = first.json()["id"]
    mine = httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": JANE})
    assert mine.status_code == 200 and mine.json()["status"] == "assigned"  # billing goes straight to payments
    theirs = httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": JOHN})
    assert theirs.status_code == 404 and theirs.json()["error"] == "not_found"
    assert httpx.get(f"{bot.url}/reports/{ref}").status_code == 401
    # Reading needs reports:read (or the write scope): a read-only session may ask, one with neither may not.
    assert httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": READONLY}).status_code == 404
    emulator.add_session("no-scopes", "customer-1009", "nos@example.com", scope="profile")
    assert httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": "no-scopes"}).status_code == 403
    assert json.dumps(emulators.slack.messages()).count("jane.doe@example.com") == 0
    assert [i["fields"]["project"]["key"] for i in issues(emulators)] == ["SUP", "SUP", "SUP"]
    assert len(cards(emulators, "C0PAY")) == 3


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    with MailCatcher() as catcher:
        yield catcher


def mail_env(catcher: MailCatcher) -> dict[str, str]:
    return {
        "TRIAGE_SMTP_URL": f"smtp://127.0.0.1:{catcher.port}?starttls=off",
        "TRIAGE_MAIL_FROM": "Support <help@shop.example>",
    }


@pytest.fixture
def reporting_bot(make_bot: Any, identity: tuple[IdentityEmulator, str], mail: MailCatcher) -> BotProcess:
    """The bot with the identity emulator and a real SMTP server (aiosmtpd)."""
    started: BotProcess = make_bot(**identity_env(identity[1]), **mail_env(mail))
    return started


def test_a_report_from_the_app_to_the_closing_email(
    reporting_bot: BotProcess, emulators: Emulators, database_url: str, mail: MailCatcher
) -> None:
    bot = reporting_bot
    screenshot = base64.b64encode(b"\x89PNG fake screenshot").decode()
    body = report(
        "Refund missing\r\nBcc: everyone@example.com",
        category="refunds",  # no route: the operators triage it
        attachments=[{"filename": "../../etc/screen shot.png", "content_type": "image/png", "data": screenshot}],
    )
    created = post(bot, body, **{"Idempotency-Key": "app-retry-1"})
    assert created.status_code == 201, created.text
    ref = created.json()["id"]
    assert created.headers["Location"] == f"/reports/{ref}"

    def status() -> str:
        answer = httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": JANE})
        assert answer.status_code == 200
        return str(answer.json()["status"])

    assert status() == "open"
    queue_drained(database_url)

    # The receipt: to the customer, with the reference; the CR/LF in the subject added no header.
    [receipt] = mail.wait_for(1)
    assert receipt["to"] == ["jane.doe@example.com"] and ref in receipt["subject"] and ref in receipt["text"]
    headers = email.message_from_string(receipt["raw"], policy=email.policy.default)
    assert headers["Bcc"] is None and "Bcc: everyone@example.com" in str(headers["Subject"])  # text, not a header

    # The Jira issue: the reports project, the full reporter, the file attached.
    [issue] = issues(emulators)
    assert (issue["fields"]["project"]["key"], issue["fields"]["issuetype"]["name"]) == ("SUP", "Bug")
    described = issue["fields"]["description"]
    assert "jane.doe@example.com" in described and ref.replace("-", "\\-") in described  # wiki markup escaped
    [attached] = issue["fields"]["attachment"]
    assert (attached["filename"], attached["mimeType"], attached["size"]) == ("screen shot.png", "image/png", 20)
    assert "category-refunds" in issue["fields"]["labels"]

    # The card: who reported it, masked; the full address appears nowhere in Slack.
    [card] = cards(emulators, "C0OPS")
    shown = json.dumps(card["blocks"])
    assert "customer-1001 (j***@example.com)" in shown and "Shop 4.2.0 (ios)" in shown
    assert "jane.doe@example.com" not in json.dumps(emulators.slack.messages())

    # Triage by clicks: the customer's status follows each step.
    from tests.e2e.helpers import click, press_with_form

    def press(channel: str, label: str, user: str, values: dict[str, dict[str, str]] | None = None) -> None:
        [shown_card] = [c for c in cards(emulators, channel) if ref in json.dumps(c["blocks"])]
        if values is None:
            assert click(bot.url, emulators, channel, shown_card["ts"], label, user).status_code == 200
        else:
            assert (
                press_with_form(bot.url, emulators, channel, shown_card["ts"], label, user, values).status_code == 200
            )
        queue_drained(database_url)

    press("C0OPS", "Assign team", "U0OP1", {"team": {"team": "payments"}})
    assert status() == "assigned"
    press("C0PAY", "Assign member", "U0PA1", {"member": {"member": "U0PA1"}})
    assert status() == "in_progress"
    press("C0PAY", "Resolve", "U0PA1", {"done": {"done": "Refund re-sent"}})
    assert status() == "resolved"
    press("C0OPS", "Request QA", "U0OP1")
    assert status() == "in_qa"
    press("C0QA", "QA pass", "U0QA1")
    assert status() == "resolved"
    # Close asks for the message for the customer, because there is one.
    message = "Your refund of 12.50 was sent again today.\nSorry for the wait."
    press("C0OPS", "Close", "U0OP1", {"message": {"message": message}})
    closed = httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": JANE}).json()
    assert (closed["status"], closed["status_text"]) == ("closed", "Closed")

    receipt_again, closing = mail.wait_for(2)
    assert receipt_again["message_id"] == receipt["message_id"]
    assert closing["to"] == ["jane.doe@example.com"] and ref in closing["subject"]
    assert "Your refund of 12.50 was sent again today." in closing["text"] and ref in closing["text"]
    assert "Sorry for the wait." in closing["html"]
    assert [i["fields"]["status"]["name"] for i in issues(emulators)] == ["Done"]
    # The app retried its first request: the same answer, nothing new, no second receipt.
    again = post(bot, body, **{"Idempotency-Key": "app-retry-1"})
    assert again.json()["id"] == ref
    queue_drained(database_url)
    assert len(mail.messages()) == 2 and len(issues(emulators)) == 1


def test_smtp_down_while_tickets_close(
    reporting_bot: BotProcess, emulators: Emulators, database_url: str, mail: MailCatcher
) -> None:
    """E-mails wait for the SMTP server and go out once each when it is back."""
    bot = reporting_bot
    mail.set_down(True)
    refs = [post(bot, report(f"problem {n}", category="other")).json()["id"] for n in range(3)]
    queue_drained_but_mail(database_url)
    from tests.e2e.helpers import press_with_form

    for ref in refs:
        [card] = [c for c in cards(emulators, "C0OPS") if ref in json.dumps(c["blocks"])]
        values = {"message": {"message": f"closing {ref}"}}
        assert press_with_form(bot.url, emulators, "C0OPS", card["ts"], "Close", "U0OP1", values).status_code == 200
    queue_drained_but_mail(database_url)
    assert mail.messages() == []
    mail.set_down(False)
    queue_drained(database_url, timeout=90)
    sent = mail.messages()
    assert len(sent) == 6 and len({m["message_id"] for m in sent}) == 6
    for ref in refs:
        mine = [m for m in sent if ref in m["subject"]]
        assert len(mine) == 2 and f"closing {ref}" in mine[1]["text"]  # the receipt first, then the closing


def queue_drained_but_mail(database_url: str) -> None:
    """Wait until only e-mail jobs (waiting for the SMTP server) are left."""
    from tests.harness import wait_until

    engine = make_engine(database_url)

    def check() -> bool:
        with engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running') AND kind <> 'mail.send'")
            ).scalar_one()
            dead = conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'dead'")).scalar_one()
        assert dead == 0
        return int(left) == 0

    try:
        wait_until(check, timeout=60, interval=0.1, what="everything but e-mail to be done")
    finally:
        engine.dispose()


def test_edges_files_keys_races_and_jira(
    make_bot: Any, emulators: Emulators, database_url: str, identity: tuple[IdentityEmulator, str], mail: MailCatcher
) -> None:
    emulator, url = identity
    bot: BotProcess = make_bot(**identity_env(url), **mail_env(mail), TRIAGE_REPORTS_PER_MINUTE="3")

    # A customer id longer than the bot keeps is refused, not a 500.
    emulator.add_session("long-sub-session", "c" * 200, "long@example.com")
    assert post(bot, report(), session="long-sub-session").status_code == 401

    # Ten at once from one customer with a limit of three: exactly three are opened.
    emulator.add_session("racer", "customer-race", "race@example.com")
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda n: post(bot, report(f"race {n}"), session="racer").status_code, range(10)))
    assert sorted(answers) == [201] * 3 + [429] * 7

    # The app's retries racing each other with one Idempotency-Key: one report, one answer for all.
    emulator.add_session("retrier", "customer-retry", "retry@example.com")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        same = list(
            pool.map(
                lambda _: post(bot, report("retried"), session="retrier", **{"Idempotency-Key": "k-race"}), range(6)
            )
        )
    assert {r.status_code for r in same} == {201} and len({r.json()["id"] for r in same}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in same) == 5

    # Files: same names made unique, a type nobody should open from Jira sent as a plain download; Jira refusing
    # one file (over its size limit, say) holds nothing up.
    files = [
        {"filename": "log.txt", "content_type": "text/plain", "data": base64.b64encode(b"one").decode()},
        {"filename": "log.txt", "content_type": "text/plain", "data": base64.b64encode(b"two").decode()},
        {"filename": "page.html", "content_type": "text/html", "data": base64.b64encode(b"<script>").decode()},
        {"filename": "huge.bin", "content_type": "application/zip", "data": base64.b64encode(b"zip").decode()},
    ]
    emulators.jira.set_fault(status=413, count=1, methods={"POST"}, path_contains="/attachments")
    created = post(bot, report("files", category="other", attachments=files))
    assert created.status_code == 201, created.text
    queue_drained(database_url)
    [issue] = [i for i in issues(emulators) if i["fields"]["summary"] == "files"]
    attached = {(a["filename"], a["mimeType"]) for a in issue["fields"]["attachment"]}
    assert len(attached) == 3 and ("log (2).txt", "text/plain") in attached
    assert ("page.html", "application/octet-stream") in attached
    [card] = [c for c in cards(emulators, "C0OPS") if created.json()["id"] in json.dumps(c["blocks"])]
    thread = [m["text"] for m in emulators.slack.thread("C0OPS", card["ts"])]
    assert any(t.startswith("Jira refused the customer's file log.txt (") for t in thread), thread

    # Closed in Jira: the customer is told all the same; a comment quoting their address stays masked in Slack.
    emulators.jira.add_webhook(f"{bot.url}/jira/webhook?token={WEBHOOK_TOKEN}")
    emulators.jira.add_comment(issue["key"], "Wrote to jane.doe@example.com about it", user="alice")
    emulators.jira.transition(issue["key"], "Done", user="alice")
    from tests.harness import wait_until

    wait_until(
        lambda: any(".closed." in m["message_id"] for m in mail.messages()), timeout=20, what="the closing e-mail"
    )
    closing = next(m for m in mail.messages() if ".closed." in m["message_id"])
    assert "Our team has dealt with your report and closed it." in closing["text"]
    queue_drained(database_url)
    assert "jane.doe@example.com" not in json.dumps(emulators.slack.messages())
    assert any("j***@example.com about it" in m["text"] for m in emulators.slack.thread("C0OPS", card["ts"]))

    # An Idempotency-Key kept past its day starts afresh instead of failing.
    first = post(bot, report("kept"), session=JOHN, **{"Idempotency-Key": "old-key"})
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE idempotent_requests SET created_at = created_at - interval '2 days'"))
    except Exception:  # SQLite has no interval: the same, its way
        with engine.begin() as conn:
            conn.execute(text("UPDATE idempotent_requests SET created_at = datetime(created_at, '-2 days')"))
    finally:
        engine.dispose()
    again = post(bot, report("kept"), session=JOHN, **{"Idempotency-Key": "old-key"})
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
