"""E-mail to customers: templates, composing a message that cannot carry injected headers, sending over SMTP.

``TRIAGE_SMTP_URL`` chooses how the connection is secured:

- ``smtp://user:password@host:587``: a plain connection that **must** be upgraded with STARTTLS (default port
  587). A server that does not offer STARTTLS is refused rather than sent the password in the clear.
- ``smtps://user:password@host:465``: implicit TLS from the first byte (default port 465).
- ``smtp://relay:25?starttls=off``: no TLS at all (default port 25), for a relay on loopback or a trusted network.
  Credentials, if given, then travel in the clear.

Certificates are verified against the system's CA store (a private CA: point ``SSL_CERT_FILE`` at it). User and
password are URL-decoded, so a password containing ``@ : / ? #`` is written ``%40 %3A %2F %3F %23``.

Sending is one connection per message and never retried here: the job queue is the only retry layer, and
``bot.retry.classify`` tells a temporary refusal (4xx, a dropped connection) from a final one (5xx).
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import re
import smtplib
import ssl
import traceback
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)

from bot.jobs.retry import PermanentError
from bot.settings import Settings

TlsMode = Literal["starttls", "implicit", "off"]

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
# Each kind of mail, and the context it is rendered with (every key required, every value a string).
MAIL_KINDS: dict[str, tuple[str, ...]] = {
    "receipt": ("reference", "subject"),
    "closed": ("reference", "subject", "message"),
}
TEMPLATE_PARTS = ("subject.txt", "txt", "html")
SAMPLE_CONTEXT = {
    "reference": "R-SAMPLE",
    "subject": "The app <crashes> when I pay & leave",
    "message": "We fixed it in version 2.4.1.\nThank you for the report.",
}
SUBJECT_LIMIT = 200  # characters; longer subjects are cut with an ellipsis
ADDRESS_LIMIT = 254  # RFC 5321's limit on a forward path
DISPLAY_NAME_LIMIT = 200

_DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "implicit": 465, "off": 25}
_URL_HINT = (
    "write it like smtp://user:password@host:587, smtps://user:password@host:465 or smtp://relay:25?starttls=off"
)
_ID_LEFT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_MESSAGE_ID = re.compile(rf"<{_ID_LEFT}@[A-Za-z0-9.-]+>")
# Unicode bidi embeddings, overrides and isolates: they can make a subject display as something else.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.tls})"


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://`` (STARTTLS required, or ``?starttls=off``) or ``smtps://`` (implicit TLS); see the module doc.

    Error messages never quote the URL: it holds the password.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(f"the SMTP URL must start with smtp:// or smtps://; {_URL_HINT}")
    if parts.fragment or "#" in parts.netloc:
        raise ValueError("the SMTP URL contains '#': URL-encode it in the password as %23")
    try:
        port = parts.port
    except ValueError:
        # ``from None``: urllib's message quotes the text after the last ':', which may be part of the password.
        raise ValueError(
            "the SMTP URL's port is not a number from 1 to 65535 "
            "(a password containing : / ? # @ must be URL-encoded, e.g. %2F for /)"
        ) from None
    if not parts.hostname:
        raise ValueError(f"the SMTP URL names no host; {_URL_HINT}")
    if parts.path not in ("", "/"):
        raise ValueError("the SMTP URL has a path; a password containing / must be URL-encoded as %2F")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - {"starttls"})
    if unknown:
        raise ValueError(f"the SMTP URL has unknown options {unknown}; the only one is ?starttls=off (smtp:// only)")
    tls: TlsMode = "implicit" if scheme == "smtps" else "starttls"
    if "starttls" in options:
        value = options["starttls"][-1].lower()
        if scheme == "smtps":
            raise ValueError("?starttls= applies to smtp:// only; smtps:// is TLS from the start")
        if value not in ("on", "off"):
            raise ValueError("?starttls= is on (the default) or off")
        tls = "off" if value == "off" else "starttls"
    if port == 0:
        raise ValueError("the SMTP URL's port is not a number from 1 to 65535")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("the SMTP URL has a password but no user; write smtp://user:password@host")
    if username and password is None:
        raise ValueError("the SMTP URL has a user but no password; write smtp://user:password@host")
    return SmtpTarget(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[tls],
        tls=tls,
        username=username or None,
        password=password,
    )


# ---- templates


class MailTemplateError(ValueError):
    """A mail template is missing or broken; the message names the file."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str  # already one clean line, bounded
    text: str
    html: str


class MailTemplates:
    """The built-in templates, each replaced by a file of the same name in ``override`` when there is one."""

    def __init__(self, override: Path | None = None) -> None:
        loaders = [FileSystemLoader(override)] if override is not None else []
        loaders.append(FileSystemLoader(BUILTIN_TEMPLATES))
        environment = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            auto_reload=False,  # what was checked at start is what is sent
            keep_trailing_newline=True,
        )
        self._templates: dict[str, Template] = {}
        for name in template_names():
            try:
                self._templates[name] = environment.get_template(name)
            except TemplateSyntaxError as exc:
                raise MailTemplateError(
                    f"mail template {exc.filename or name}, line {exc.lineno}: {exc.message}"
                ) from exc
            except TemplateNotFound as exc:
                raise MailTemplateError(f"mail template {name} is missing from {BUILTIN_TEMPLATES}") from exc

    def origin(self, name: str) -> str:
        """The file a template was read from."""
        return self._templates[name].filename or name

    def render(self, kind: str, context: Mapping[str, str]) -> RenderedMail:
        if kind not in MAIL_KINDS:
            raise ValueError(f"unknown kind of mail {kind!r}; one of {sorted(MAIL_KINDS)}")
        missing = [key for key in MAIL_KINDS[kind] if not isinstance(context.get(key), str)]
        if missing:
            raise ValueError(f"the {kind} mail needs these context values as strings: {', '.join(missing)}")
        values = {key: context[key] for key in MAIL_KINDS[kind]}
        values["subject"] = one_line(values["subject"], SUBJECT_LIMIT)  # a subject is one line, wherever it shows
        subject, text, html = (self._render(f"{kind}.{part}", values) for part in TEMPLATE_PARTS)
        return RenderedMail(subject=one_line(subject, SUBJECT_LIMIT) or "(no subject)", text=text, html=html)

    def _render(self, name: str, values: Mapping[str, str]) -> str:
        template = self._templates[name]
        try:
            return template.render(values)
        except Exception as exc:
            # Jinja rewrites tracebacks so that template lines show as frames of the template's file.
            lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == template.filename]
            where = f"{self.origin(name)}, line {lines[-1]}" if lines else self.origin(name)
            detail = exc.message if isinstance(exc, UndefinedError) and exc.message else str(exc)
            given = ", ".join(values)
            raise MailTemplateError(f"mail template {where}: {detail} (these templates get: {given})") from exc


def template_names() -> list[str]:
    return [f"{kind}.{part}" for kind in MAIL_KINDS for part in TEMPLATE_PARTS]


def load_templates(settings: Settings) -> MailTemplates:
    """The templates this deployment sends, each rendered once with sample values: a broken one stops the start."""
    folder = settings.mail_templates
    if folder is not None:
        if not folder.is_dir():
            raise MailTemplateError(f"TRIAGE_MAIL_TEMPLATES: {folder} is not a folder")
        expected = set(template_names())
        unknown = sorted(p.name for p in folder.iterdir() if p.suffix in (".txt", ".html") and p.name not in expected)
        if unknown:
            raise MailTemplateError(
                f"TRIAGE_MAIL_TEMPLATES: {folder} has {', '.join(unknown)}, which replace nothing; "
                f"template files are named {', '.join(sorted(expected))}"
            )
    templates = MailTemplates(folder)
    for kind in MAIL_KINDS:
        rendered = templates.render(kind, SAMPLE_CONTEXT)
        if rendered.subject == "(no subject)":
            raise MailTemplateError(f"mail template {templates.origin(kind + '.subject.txt')} renders an empty subject")
    return templates


# ---- composing


def one_line(text: str, limit: int) -> str:
    """Text fit for a header: control characters and line breaks become spaces, runs of space one, at most
    ``limit`` characters."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text.translate(_BIDI_CONTROLS)
    )
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def parse_address(value: str, *, what: str = "address") -> Address:
    """Exactly one mailbox (``user@example.com`` or ``Name <user@example.com>``), else ValueError."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the {what} is empty")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise ValueError(f"the {what} contains a control character or line break")
    try:
        header = email.policy.SMTP.header_factory("To", value)
        groups = header.groups
        defects = header.defects
    except Exception as exc:
        raise ValueError(f"the {what} is not an e-mail address") from exc
    if len(groups) != 1 or groups[0].display_name is not None or len(groups[0].addresses) != 1:
        raise ValueError(f"the {what} must be exactly one e-mail address")
    address: Address = groups[0].addresses[0]
    if defects or not address.username or not address.domain or address.domain.startswith("["):
        raise ValueError(f"the {what} is not a valid e-mail address")
    if len(address.addr_spec) > ADDRESS_LIMIT or len(address.display_name) > DISPLAY_NAME_LIMIT:
        raise ValueError(f"the {what} is too long")
    return address


def message_id_for(key: str, *, sender: str) -> str:
    """A Message-ID derived from ``key`` (e.g. the report and the kind of mail): the same on every retry."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{parse_address(sender, what='sender').domain}>"


def compose(
    kind: str,
    to: str,
    context: Mapping[str, str],
    *,
    templates: MailTemplates,
    sender: str,
    message_id: str,
) -> EmailMessage:
    """One multipart/alternative message (plain text and HTML) to one recipient.

    ``message_id`` is kept as given, so a retry sends the same one: ``<unique-part@domain>``, or the unique part
    alone (``R-1001.receipt.3f2a``), completed with the sender's domain.

    Customer text reaches headers only through the subject, which is cut to one clean line; addresses are parsed
    and must be a single mailbox; and the SMTP policy refuses any header value with a line break.
    """
    recipient = parse_address(to, what="recipient")
    from_ = parse_address(sender, what="sender")
    if re.fullmatch(_ID_LEFT, message_id):
        message_id = f"<{message_id}@{from_.domain}>"
    if not _MESSAGE_ID.fullmatch(message_id) or len(message_id) > 250:
        raise ValueError("the Message-ID must look like <unique-part@domain>, or be the unique part alone")
    mail = templates.render(kind, context)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = from_
    message["To"] = recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: out-of-office replies must not answer it
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


# ---- sending


class Mailer:
    """Sends composed messages to the SMTP server of ``TRIAGE_SMTP_URL``, or to ``target`` when one is given (the
    sandbox mail catcher). Disabled when there is neither."""

    def __init__(self, settings: Settings, target: SmtpTarget | None = None) -> None:
        if target is None and settings.smtp_url is not None:
            try:
                target = parse_smtp_url(settings.smtp_url.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"TRIAGE_SMTP_URL: {exc}") from None
        self.target = target
        self.timeout = settings.smtp_timeout
        # Made once (it reads the CA store: ~25 ms) and shared by every send; only when TLS is used at all.
        self._tls = ssl.create_default_context() if target is not None and target.tls != "off" else None

    @property
    def enabled(self) -> bool:
        return self.target is not None

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the server, or raise: smtplib's errors as they are (``bot.retry.classify`` sorts
        them), PermanentError for what only a configuration change can fix."""
        target = self.target
        if target is None:
            raise PermanentError("e-mail is off: set TRIAGE_SMTP_URL")
        client = self._open(target)
        try:
            refused = client.send_message(message)
        except BaseException:
            client.close()
            raise
        # The server has taken the message: failing now would make the queue send it again.
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
        if refused:
            raise PermanentError(f"the SMTP server refused some recipients: {refused}")

    def _open(self, target: SmtpTarget) -> smtplib.SMTP:
        tls = self._tls  # None only when the target uses no TLS
        try:
            if target.tls == "implicit":
                client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=self.timeout, context=tls)
            else:
                client = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise _certificate_refused(target, exc) from exc
        try:
            client.ehlo()
            if target.tls == "starttls":
                if not client.has_extn("starttls"):
                    raise PermanentError(
                        f"the SMTP server at {target.host}:{target.port} does not offer STARTTLS, which smtp:// "
                        "requires; use smtps:// if it speaks TLS from the start, or add ?starttls=off to "
                        "TRIAGE_SMTP_URL for a relay on a trusted network"
                    )
                client.starttls(context=tls)
                client.ehlo()
            if target.username is not None:
                _login(client, target)
        except ssl.SSLCertVerificationError as exc:
            client.close()
            raise _certificate_refused(target, exc) from exc
        except BaseException:
            client.close()
            raise
        return client


def _login(client: smtplib.SMTP, target: SmtpTarget) -> None:
    user, password = target.username or "", target.password or ""
    try:
        if (user + password).isascii():
            client.login(user, password)
        else:
            _login_utf8(client, user, password)
    except smtplib.SMTPAuthenticationError as exc:
        if 400 <= exc.smtp_code < 500:
            raise  # 454: the server cannot check credentials right now; the queue tries again
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise PermanentError(
            f"the SMTP server at {target.host}:{target.port} refused the login ({exc.smtp_code} {reply}): "
            "check the user and password in TRIAGE_SMTP_URL"
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(
            f"TRIAGE_SMTP_URL has a user and password but the SMTP server at {target.host}:{target.port} offers no "
            "login (AUTH); remove them, or use the server's submission port"
        ) from exc
    except smtplib.SMTPException as exc:
        if isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPServerDisconnected):
            raise
        raise PermanentError(f"cannot log in to the SMTP server at {target.host}:{target.port}: {exc}") from exc


def _login_utf8(client: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib sends credentials as ASCII only; SASL PLAIN (RFC 4616) carries UTF-8."""
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    if "PLAIN" not in client.esmtp_features["auth"].upper().split():
        raise PermanentError(
            "the user or password in TRIAGE_SMTP_URL is not ASCII, which only AUTH PLAIN can carry, and the SMTP "
            "server does not offer it"
        )
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    code, reply = client.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _certificate_refused(target: SmtpTarget, exc: ssl.SSLCertVerificationError) -> PermanentError:
    return PermanentError(
        f"the TLS certificate of the SMTP server at {target.host}:{target.port} failed verification "
        f"({exc.verify_message}); for a private CA point SSL_CERT_FILE at its certificate"
    )
