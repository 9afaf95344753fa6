"""The ``mail.send`` job: one e-mail to a customer, composed from the templates when it is sent.

Queued in the same transaction as what it tells of (a report received, a ticket closed), in the report's own
lane so its e-mails go out in order. SMTP failures are retried with backoff (4xx, connection refused, a
server that is down); 5xx answers are final. The Message-ID was fixed when the job was queued, so a send
repeated after a lost "250" is the same message to the receiver.
"""

from __future__ import annotations

import json
import logging

from bot.mailer import compose
from bot.metrics import MAILS_SENT
from bot.runtime import Runtime
from bot.worker import JobContext

KIND = "mail.send"
log = logging.getLogger("triage.mail")


def send(runtime: Runtime, ctx: JobContext) -> None:
    payload = json.loads(ctx.job.payload)
    mailer = runtime.mailer
    if mailer is None or not mailer.enabled:
        log.warning("e-mail is off (TRIAGE_SMTP_URL unset): not sent", extra={"kind": payload["kind"]})
        return
    try:
        message = compose(
            payload["kind"],
            payload["to"],
            payload["context"],
            templates=runtime.mail_templates,
            sender=runtime.settings.mail_from,
            message_id=payload["message_id"],
        )
    except ValueError as problem:  # an address no mail server would take: nothing to retry
        log.error("e-mail not sent: %s", problem, extra={"kind": payload["kind"], "ticket_id": payload["ticket_id"]})
        return
    mailer.send(message)
    MAILS_SENT.labels(payload["kind"]).inc()
    log.info("e-mail sent", extra={"kind": payload["kind"], "ticket_id": payload["ticket_id"]})
