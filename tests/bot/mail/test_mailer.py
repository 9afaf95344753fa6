"""E-mail to customers against a real SMTP server (aiosmtpd): templates, header injection, TLS, login, and
which failures the job queue retries."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from bot.jobs.retry import PermanentError, classify
from bot.mail.mailer import (
    SUBJECT_LIMIT,
    Mailer,
    MailTemplateError,
    MailTemplates,
    SmtpTarget,
    compose,
    load_templates,
    message_id_for,
    parse_smtp_url,
)
from bot.sandbox.mail_catcher import EphemeralPortController, MailCatcher, create_mail_catcher_app
from bot.sandbox.server_thread import ServerThread
from bot.settings import Settings

SENDER = "triage-bot <support@example.com>"
CUSTOMER = "Jo Customer <jo@example.com>"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    for name in os.environ:
        if name.startswith("TRIAGE_"):
            monkeypatch.delenv(name)

    def make(**values: Any) -> Settings:
        return Settings(mail_from=SENDER, smtp_timeout=5, **values)

    return make


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    with MailCatcher() as running:
        yield running


@pytest.fixture
def templates() -> MailTemplates:
    return MailTemplates()


def receipt(templates: MailTemplates, subject: str = "The app crashes", **overrides: str) -> EmailMessage:
    context = {"reference": "R-1001", "subject": subject} | overrides
    return compose(
        "receipt", CUSTOMER, context, templates=templates, sender=SENDER, message_id="<r-1001.receipt@example.com>"
    )


def parsed(raw: str) -> EmailMessage:
    message = email.message_from_bytes(raw.encode(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def smtp_server(handler: Any, **smtp_options: Any) -> EphemeralPortController:
    controller = EphemeralPortController(
        handler, hostname="127.0.0.1", port=0, server_hostname="test.smtp", **smtp_options
    )
    controller.start()
    return controller


# ---- what is sent


def test_receipt_and_closed_mails_arrive_with_text_html_and_the_headers_they_need(
    settings: Callable[..., Settings], catcher: MailCatcher, templates: MailTemplates
) -> None:
    mailer = Mailer(settings(), catcher.target)
    mailer.send(receipt(templates))
    closed = compose(
        "closed",
        CUSTOMER,
        {"reference": "R-1001", "subject": "The app crashes", "message": "Fixed in 2.4.1.\nThanks for telling us."},
        templates=templates,
        sender=SENDER,
        message_id="<r-1001.closed@example.com>",
    )
    mailer.send(closed)

    first, second = catcher.wait_for(2)
    assert (first["from"], first["to"]) == ("support@example.com", ["jo@example.com"])
    for got, kind in ((first, "receipt"), (second, "closed")):
        message = parsed(got["raw"])
        assert message.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["From"] == SENDER and message["To"] == CUSTOMER
        assert message["Message-ID"] == f"<r-1001.{kind}@example.com>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Date"].datetime.tzinfo is not None
        assert "R-1001" in got["subject"] and "The app crashes" in got["subject"]
        assert "R-1001" in got["text"] and "R-1001" in got["html"]
    assert "received" in first["subject"].lower() and "closed" in second["subject"].lower()
    assert "Fixed in 2.4.1.\nThanks for telling us." in second["text"]
    assert "Fixed in 2.4.1.\nThanks for telling us." in second["html"]


def test_customer_text_is_escaped_in_html_and_literal_in_text(
    settings: Callable[..., Settings], catcher: MailCatcher, templates: MailTemplates
) -> None:
    subject = "<script>alert(1)</script> Tom & Jerry"
    Mailer(settings(), catcher.target).send(receipt(templates, subject))
    (got,) = catcher.wait_for(1)
    assert subject in got["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry" in got["html"]
    assert "<script>" not in got["html"]
    assert subject in got["subject"]  # a header is not HTML


@pytest.mark.parametrize(
    "injected",
    [
        "Hello\r\nBcc: evil@attacker.example",
        "Hello\nBcc: evil@attacker.example",
        "Hello\rBcc: evil@attacker.example",
        "Hello\r\n\r\n<html>a body of our choosing",
        "Hello\u2028Bcc: evil@attacker.example\x00\x1b[31m",
    ],
)
def test_no_line_break_in_the_subject_can_add_a_header(
    settings: Callable[..., Settings], catcher: MailCatcher, templates: MailTemplates, injected: str
) -> None:
    message = receipt(templates, injected, reference="R-1\r\nX-Injected: yes")
    Mailer(settings(), catcher.target).send(message)
    (got,) = catcher.wait_for(1)

    received = parsed(got["raw"])
    assert got["to"] == ["jo@example.com"]
    assert received["Bcc"] is None and received["X-Injected"] is None
    headers = [name.lower() for name in received]
    assert sorted(headers) == sorted(
        ["from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version", "content-type"]
    )
    subject = received["Subject"]
    assert "\n" not in subject and "\r" not in subject and "\x00" not in subject
    assert "Hello" in subject and "R-1 X-Injected: yes" in subject


def test_a_long_subject_is_cut(templates: MailTemplates) -> None:
    message = receipt(templates, "word " * 500)
    subject = str(message["Subject"])
    assert len(subject) <= SUBJECT_LIMIT and subject.endswith("…")


@pytest.mark.parametrize(
    "address",
    [
        "jo@example.com\r\nBcc: evil@attacker.example",
        "jo@example.com\nBcc: evil@attacker.example",
        "jo@example.com, evil@attacker.example",
        "jo@example.com; evil@attacker.example",
        "undisclosed: jo@example.com, evil@attacker.example;",
        "jo@example.com <evil@attacker.example>",
        "not an address",
        "jo@",
        "@example.com",
        "jo@[127.0.0.1]",
        "",
    ],
)
def test_a_bad_recipient_is_refused_before_anything_is_sent(
    catcher: MailCatcher, templates: MailTemplates, address: str
) -> None:
    with pytest.raises(ValueError, match="recipient"):
        compose(
            "receipt",
            address,
            {"reference": "R-1", "subject": "s"},
            templates=templates,
            sender=SENDER,
            message_id="<a@b>",
        )
    assert catcher.messages() == []


def test_sender_message_id_kind_and_context_are_checked(templates: MailTemplates) -> None:
    context = {"reference": "R-1", "subject": "s"}
    with pytest.raises(ValueError, match="sender"):
        compose("receipt", CUSTOMER, context, templates=templates, sender="a@b.com\r\nBcc: c@d.com", message_id="<a@b>")
    for bad_id in ("<a@b>\r\nBcc: c@d.com", "R-1\r\nBcc: c@d.com", "a b", "<a@b", ""):
        with pytest.raises(ValueError, match="Message-ID"):
            compose("receipt", CUSTOMER, context, templates=templates, sender=SENDER, message_id=bad_id)
    with pytest.raises(ValueError, match="unknown kind"):
        compose("invoice", CUSTOMER, context, templates=templates, sender=SENDER, message_id="<a@b>")
    with pytest.raises(ValueError, match="message"):
        compose("closed", CUSTOMER, context, templates=templates, sender=SENDER, message_id="<a@b>")


def test_a_retry_sends_the_same_message_id(
    settings: Callable[..., Settings], catcher: MailCatcher, templates: MailTemplates
) -> None:
    key = "report:R-1001:receipt"
    assert message_id_for(key, sender=SENDER) == message_id_for(key, sender=SENDER)
    assert message_id_for(key, sender=SENDER) != message_id_for("report:R-1001:closed", sender=SENDER)
    mailer = Mailer(settings(), catcher.target)
    for _attempt in range(2):  # a job composes again on each attempt
        message_id = message_id_for(key, sender=SENDER)
        context = {"reference": "R-1001", "subject": "s"}
        mailer.send(compose("receipt", CUSTOMER, context, templates=templates, sender=SENDER, message_id=message_id))
    context = {"reference": "R-1001", "subject": "s"}
    for _attempt in range(2):  # the unique part alone is completed with the sender's domain
        mailer.send(compose("receipt", CUSTOMER, context, templates=templates, sender=SENDER, message_id="R-1.a1b2"))
    first, second, third, fourth = catcher.wait_for(4)
    assert first["message_id"] == second["message_id"] == message_id_for(key, sender=SENDER)
    assert first["message_id"].endswith("@example.com>")
    assert third["message_id"] == fourth["message_id"] == "<R-1.a1b2@example.com>"


# ---- templates


def test_an_override_folder_replaces_only_its_files(
    settings: Callable[..., Settings], catcher: MailCatcher, tmp_path: Path
) -> None:
    (tmp_path / "receipt.txt").write_text("Custom receipt for {{ reference }}: {{ subject }} <b>\n")
    templates = load_templates(settings(mail_templates=tmp_path))
    assert templates.origin("receipt.txt") == str(tmp_path / "receipt.txt")
    Mailer(settings(), catcher.target).send(receipt(templates, "A & B"))
    (got,) = catcher.wait_for(1)
    assert got["text"].strip() == "Custom receipt for R-1001: A & B <b>"
    assert "What happens next" in got["html"] and "A &amp; B" in got["html"]  # built-in HTML
    assert "We received your report" in got["subject"]  # built-in subject


def test_an_html_override_is_escaped_too(settings: Callable[..., Settings], tmp_path: Path) -> None:
    (tmp_path / "closed.html").write_text("<p>{{ message }}</p>")
    templates = load_templates(settings(mail_templates=tmp_path))
    context = {"reference": "R-1", "subject": "s", "message": "<img src=x onerror=alert(1)>"}
    html = templates.render("closed", context).html
    assert html == "<p>&lt;img src=x onerror=alert(1)&gt;</p>"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("receipt.html", "<p>{{ reference </p>\n", r"receipt\.html, line 1"),
        ("closed.txt", "Hello\n{{ customer_name }}\n", r"closed\.txt, line 2: 'customer_name' is undefined"),
        ("receipt.subject.txt", "{{ subject | no_such_filter }}", r"receipt\.subject\.txt.*no_such_filter"),
        ("closed.subject.txt", "   \n", r"closed\.subject\.txt renders an empty subject"),
        ("reciept.txt", "typo", r"reciept\.txt, which replace nothing"),
    ],
)
def test_a_broken_override_stops_the_start_naming_the_file(
    settings: Callable[..., Settings], tmp_path: Path, name: str, content: str, expected: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(MailTemplateError, match=expected) as caught:
        load_templates(settings(mail_templates=tmp_path))
    assert str(tmp_path) in str(caught.value)


def test_the_template_folder_must_exist(settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(MailTemplateError, match=r"TRIAGE_MAIL_TEMPLATES: .* is not a folder"):
        load_templates(settings(mail_templates=tmp_path / "missing"))


def test_the_built_in_templates_are_packaged() -> None:
    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    folder = Path(__file__).resolve().parents[3] / "bot" / "mail" / "templates"
    assert {p.suffix for p in folder.iterdir()} == {".txt", ".html"}
    assert '"mail/templates/*.txt"' in pyproject and '"mail/templates/*.html"' in pyproject


# ---- the SMTP URL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 587, "starttls")),
        ("smtps://mail.example.com", SmtpTarget("mail.example.com", 465, "implicit")),
        ("smtp://relay.internal?starttls=off", SmtpTarget("relay.internal", 25, "off")),
        ("smtp://relay.internal:2525/?starttls=off", SmtpTarget("relay.internal", 2525, "off")),
        ("smtp://relay:25?starttls=on", SmtpTarget("relay", 25, "starttls")),
        ("SMTPS://Mail.Example.com:1465", SmtpTarget("mail.example.com", 1465, "implicit")),
        ("smtp://[::1]:1025?starttls=off", SmtpTarget("::1", 1025, "off")),
        (
            "smtp://apikey%40example.com:p%40ss%3Aw%2Frd%3F%23%25+x@smtp.example.com:587",
            SmtpTarget("smtp.example.com", 587, "starttls", "apikey@example.com", "p@ss:w/rd?#%+x"),
        ),
        ("smtps://user:p@ss@smtp.example.com", SmtpTarget("smtp.example.com", 465, "implicit", "user", "p@ss")),
    ],
)
def test_smtp_urls(url: str, expected: SmtpTarget) -> None:
    target = parse_smtp_url(url)
    assert target == expected
    assert target.password is None or target.password not in repr(target)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://secret-user:s3cr3t-pw@mail.example.com", "must start with smtp:// or smtps://"),
        ("mail.example.com:587", "must start with smtp:// or smtps://"),
        ("smtp://user:s3cr3t-pw@", "names no host"),
        ("smtp://user:s3cr#t-pw@mail.example.com", "%23"),
        ("smtp://user:s3cr3t-pw@mail.example.com:99999", "port"),
        ("smtp://user:s3cr3t-pw@mail.example.com:0", "port"),
        ("smtp://user:s3cr/t-pw@mail.example.com", "port"),
        ("smtp://user:s3cr3t-pw@mail.example.com/x", "path"),
        ("smtp://user:s3cr3t-pw@mail.example.com?tls=off", "unknown options"),
        ("smtps://user:s3cr3t-pw@mail.example.com?starttls=off", "smtp:// only"),
        ("smtp://user:s3cr3t-pw@mail.example.com?starttls=maybe", "on .* or off"),
        ("smtp://:s3cr3t-pw@mail.example.com", "no user"),
        ("smtp://user@mail.example.com", "no password"),
    ],
)
def test_bad_smtp_urls_say_why_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as caught:
        parse_smtp_url(url)
    assert "s3cr" not in str(caught.value) and caught.value.__cause__ is None


def test_the_mailer_reads_the_url_from_settings(settings: Callable[..., Settings]) -> None:
    assert not Mailer(settings()).enabled
    with pytest.raises(PermanentError, match="TRIAGE_SMTP_URL"):
        Mailer(settings()).send(EmailMessage())
    mailer = Mailer(settings(smtp_url="smtps://u:p%40ss@mail.example.com"))
    assert mailer.enabled and mailer.target == SmtpTarget("mail.example.com", 465, "implicit", "u", "p@ss")
    with pytest.raises(ValueError, match=r"TRIAGE_SMTP_URL: .*unknown options") as caught:
        Mailer(settings(smtp_url="smtp://u:s3cr3t@mail.example.com?tls=1"))
    assert "s3cr3t" not in str(caught.value)


# ---- login, TLS


class Recorder:
    """An aiosmtpd handler that keeps messages and answers what a test tells it to at each step."""

    def __init__(self, password: str = "p@ss:w/rd €", **replies: str) -> None:
        self.password, self.replies = password, replies
        self.logins: list[tuple[bytes, bytes]] = []
        self.messages: list[tuple[bytes, bool]] = []  # raw, over TLS

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if "MAIL" in self.replies:
            return self.replies["MAIL"]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if "RCPT" in self.replies:
            return self.replies["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if "DATA" in self.replies:
            return self.replies["DATA"]
        self.messages.append((envelope.original_content, session.ssl is not None))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        if "AUTH" in self.replies:
            return AuthResult(success=False, handled=False, message=self.replies["AUTH"])
        ok = (data.login, data.password) == (b"apikey@example.com", self.password.encode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def recorder_server() -> Iterator[Callable[..., tuple[Recorder, EphemeralPortController]]]:
    started: list[EphemeralPortController] = []

    def start(
        replies: dict[str, str] | None = None, password: str = "p@ss:w/rd €", **smtp_options: Any
    ) -> tuple[Recorder, EphemeralPortController]:
        recorder = Recorder(password, **(replies or {}))
        controller = smtp_server(recorder, authenticator=recorder.authenticate, auth_require_tls=False, **smtp_options)
        started.append(controller)
        return recorder, controller

    yield start
    for controller in started:
        controller.stop()


@pytest.mark.parametrize(
    ("password", "encoded"),
    [("p@ss:w/rd?#", "p%40ss%3Aw%2Frd%3F%23"), ("p@ss:w/rd €", "p%40ss%3Aw%2Frd%20%E2%82%AC")],
    ids=["ascii", "utf-8"],
)
def test_login_with_url_encoded_credentials(
    settings: Callable[..., Settings],
    recorder_server: Callable[..., Any],
    templates: MailTemplates,
    password: str,
    encoded: str,
) -> None:
    recorder, server = recorder_server(password=password)
    url = f"smtp://apikey%40example.com:{encoded}@127.0.0.1:{server.port}?starttls=off"
    Mailer(settings(smtp_url=url)).send(receipt(templates))
    assert recorder.logins == [(b"apikey@example.com", password.encode())]
    assert len(recorder.messages) == 1


def test_a_wrong_password_is_permanent_and_names_the_setting(
    settings: Callable[..., Settings], recorder_server: Callable[..., Any], templates: MailTemplates
) -> None:
    recorder, server = recorder_server()
    url = f"smtp://apikey%40example.com:wrong@127.0.0.1:{server.port}?starttls=off"
    with pytest.raises(PermanentError, match=r"refused the login \(535.*TRIAGE_SMTP_URL") as caught:
        Mailer(settings(smtp_url=url)).send(receipt(templates))
    assert not classify(caught.value).retryable
    assert isinstance(caught.value.__cause__, smtplib.SMTPAuthenticationError)
    assert not classify(caught.value.__cause__).retryable
    assert recorder.messages == []


def test_a_temporary_login_failure_is_retried(
    settings: Callable[..., Settings], recorder_server: Callable[..., Any], templates: MailTemplates
) -> None:
    _, server = recorder_server({"AUTH": "454 4.7.0 Temporary authentication failure"})
    url = f"smtp://apikey%40example.com:x@127.0.0.1:{server.port}?starttls=off"
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        Mailer(settings(smtp_url=url)).send(receipt(templates))
    assert classify(caught.value).retryable


def test_smtp_url_requires_starttls(
    settings: Callable[..., Settings], recorder_server: Callable[..., Any], templates: MailTemplates
) -> None:
    recorder, server = recorder_server()
    url = f"smtp://apikey%40example.com:pw@127.0.0.1:{server.port}"
    with pytest.raises(PermanentError, match=r"does not offer STARTTLS.*\?starttls=off"):
        Mailer(settings(smtp_url=url)).send(receipt(templates))
    assert recorder.logins == [] and recorder.messages == []  # the password never went out in the clear


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_tls_with_a_verified_certificate(
    settings: Callable[..., Settings],
    recorder_server: Callable[..., Any],
    templates: MailTemplates,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    implicit: bool,
) -> None:
    if implicit:
        recorder, server = recorder_server(password="s3cret", ssl_context=server_context(certificate))
        url = f"smtps://apikey%40example.com:s3cret@127.0.0.1:{server.port}"
    else:
        recorder, server = recorder_server(
            password="s3cret", tls_context=server_context(certificate), require_starttls=True
        )
        url = f"smtp://apikey%40example.com:s3cret@127.0.0.1:{server.port}"
    mailer = Mailer(settings(smtp_url=url))

    with pytest.raises(PermanentError, match=r"certificate .* failed verification.*SSL_CERT_FILE"):
        mailer.send(receipt(templates))  # not trusted yet
    assert recorder.logins == []

    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the documented way to trust a private CA
    mailer = Mailer(settings(smtp_url=url))  # read at start, like the bot does
    mailer.send(receipt(templates))
    assert len(recorder.logins) == 1
    ((raw, over_tls),) = recorder.messages
    assert over_tls or implicit  # aiosmtpd marks STARTTLS sessions; smtps is TLS by construction
    assert b"R-1001" in raw


# ---- which failures are retried


@pytest.mark.parametrize(
    ("replies", "error", "retryable"),
    [
        ({"RCPT": "450 4.2.1 Mailbox busy, try later"}, smtplib.SMTPRecipientsRefused, True),
        ({"RCPT": "550 5.1.1 No such mailbox"}, smtplib.SMTPRecipientsRefused, False),
        ({"MAIL": "451 4.3.0 Greylisted, try again"}, smtplib.SMTPSenderRefused, True),
        ({"MAIL": "553 5.1.8 Sender domain refused"}, smtplib.SMTPSenderRefused, False),
        ({"DATA": "452 4.3.1 Insufficient storage"}, smtplib.SMTPDataError, True),
        ({"DATA": "554 5.7.1 Message rejected as spam"}, smtplib.SMTPDataError, False),
    ],
)
def test_4xx_is_retried_and_5xx_is_not(
    recorder_server: Callable[..., Any],
    settings: Callable[..., Settings],
    templates: MailTemplates,
    replies: dict[str, str],
    error: type[Exception],
    retryable: bool,
) -> None:
    recorder, server = recorder_server(replies)
    with pytest.raises(error) as caught:
        Mailer(settings(), SmtpTarget("127.0.0.1", server.port, "off")).send(receipt(templates))
    assert classify(caught.value).retryable is retryable
    assert recorder.messages == []


def test_classification_of_smtp_errors() -> None:
    assert classify(smtplib.SMTPServerDisconnected("Connection unexpectedly closed")).retryable
    assert classify(smtplib.SMTPConnectError(421, b"Service not available")).retryable
    assert not classify(smtplib.SMTPConnectError(554, b"No SMTP service here")).retryable
    mixed = {"a@example.com": (450, b"busy"), "b@example.com": (550, b"no such mailbox")}
    assert not classify(smtplib.SMTPRecipientsRefused(mixed)).retryable
    assert classify(smtplib.SMTPRecipientsRefused({"a@example.com": (421, b"closing")})).retryable
    assert not classify(smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid")).retryable
    assert classify(smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary authentication failure")).retryable
    assert not classify(smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")).retryable


def test_server_down_is_retried_and_the_mail_goes_out_when_it_is_back(
    settings: Callable[..., Settings], catcher: MailCatcher, templates: MailTemplates
) -> None:
    mailer = Mailer(settings(), catcher.target)
    catcher.set_down(True)
    with pytest.raises(ConnectionRefusedError) as caught:
        mailer.send(receipt(templates))
    assert classify(caught.value).retryable
    catcher.set_down(False)
    mailer.send(receipt(templates))
    (got,) = catcher.wait_for(1)
    assert got["message_id"] == "<r-1001.receipt@example.com>"


def test_a_server_that_hangs_up_is_retried(settings: Callable[..., Settings], templates: MailTemplates) -> None:
    class HangUp:
        async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
            server.transport.close()
            return "250 OK"

    server = smtp_server(HangUp())
    try:
        with pytest.raises(smtplib.SMTPServerDisconnected) as caught:
            Mailer(settings(), SmtpTarget("127.0.0.1", server.port, "off")).send(receipt(templates))
        assert classify(caught.value).retryable
    finally:
        server.stop()


# ---- the catcher's HTTP view


def test_the_catcher_lists_messages_over_http(
    settings: Callable[..., Settings], catcher: MailCatcher, templates: MailTemplates
) -> None:
    Mailer(settings(), catcher.target).send(receipt(templates, "Tom & Jerry"))
    catcher.wait_for(1)
    with ServerThread(create_mail_catcher_app(catcher)) as server:
        (listed,) = httpx.get(f"{server.url}/_emulator/messages", timeout=5).json()
    assert listed["to"] == ["jo@example.com"] and listed["message_id"] == "<r-1001.receipt@example.com>"
    assert "Tom & Jerry" in listed["text"] and "Tom &amp; Jerry" in listed["html"]
    catcher.clear()
    assert catcher.messages() == []
    with pytest.raises(TimeoutError):
        catcher.wait_for(1, timeout=0.1)
