"""The sandbox pages: the Slack emulator as a Slack client, the Jira emulator as Jira, the mail catcher as an inbox,
and a place to send sample alerts and customer reports.

Every action goes the way it would in the real world: a button or a form in "Slack" is the signed request Slack
sends, delivered to /slack/events; a change "in Jira" is made in the Jira emulator, which sends Jira's webhook;
an alert is POSTed to /alerts/* with the webhook token; a report to /reports with a customer's session.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from bot.sandbox import samples
from bot.tickets import operations
from webhooks.console.web import Console, ConsoleRefusal, People, Visit

SLACK = "/console/sandbox/slack"
SLASH_LIMIT = 500
ALERT_SOURCES = {"alertmanager": "Alertmanager", "grafana": "Grafana", "events": "Events API v2"}


def register(router: APIRouter, console: Console) -> None:
    emulators = console.emulators
    policy = console.runtime.policy

    def slack() -> Any:
        if emulators.slack is None:
            raise ConsoleRefusal(404, "Slack is real here: there is no sandbox Slack to show.")
        return emulators.slack

    def people() -> People:
        emu = slack()
        found = People()
        roles: dict[str, list[str]] = {}
        audiences = [("operator", policy.operators)] + [(f"team {n}", t) for n, t in policy.teams.items()]
        audiences += [("QA", policy.qa)] if policy.qa else []
        for role, audience in audiences:
            for member in audience.users:
                for user in emu.usergroups.get(member, [member]):
                    roles.setdefault(user, []).append(role)
        for user in emu.users.values():
            if user.is_bot:
                continue
            found.ids.append(user.id)
            found.names[user.id] = user.real_name or user.name
            found.roles[user.id] = ", ".join(roles.get(user.id, [])) or "outsider: in no policy group"
        return found

    def acting(people: People, wanted: str | None) -> str:
        if wanted in people.ids:
            return str(wanted)
        return next((u for u in people.ids if "operator" in people.roles[u]), people.ids[0])

    def channels() -> list[tuple[str, str, str]]:
        """(id, name, what it is for): the policy's channels first, then any other the bot posted to."""
        emu = slack()
        known = [(policy.operators.channel, "operators")]
        known += [(t.channel, f"team {n}") for n, t in policy.teams.items()]
        known += [(policy.qa.channel, "QA")] if policy.qa else []
        seen = {c for c, _ in known}
        others = sorted({m["channel"] for m in emu.messages()} - seen)
        return [(c, emu.channels.get(c, c.lower()), why) for c, why in known + [(c, "") for c in others]]

    def names() -> dict[str, str]:
        emu = slack()
        found = {u.id: u.real_name or u.name for u in emu.users.values()}
        found.update(dict(emu.channels))
        return found

    def timeline(channel: str, user: str) -> list[dict[str, Any]]:
        """The channel's messages as Slack shows them to ``user``: top level, each with its thread, and the
        ephemeral ones for ``user``, oldest first."""
        emu = slack()
        stored = emu.messages(channel)
        by_ts = {m["ts"]: m for m in stored}
        shown: list[dict[str, Any]] = []
        for message in stored:
            if message["thread_ts"] or message["orphan"]:
                continue
            replies = [by_ts[r] for r in message["replies"] if r in by_ts]
            shown.append(message | {"thread": replies, "ephemeral": False})
        for ephemeral in emu.ephemerals(channel, user):
            shown.append(ephemeral | {"thread": [], "ephemeral": True, "edit_count": 0})
        return sorted(shown, key=lambda m: float(m["ts"]))

    @router.get("/sandbox/slack")
    async def slack_page(request: Request, channel: str | None = None) -> Response:
        visit = console.visit(request)
        emu = slack()
        crowd = people()
        user = acting(crowd, request.query_params.get("as"))
        listed = channels()
        shown = channel if channel in {c for c, _, _ in listed} else listed[0][0]
        views = emu.open_views(user)
        return console.page(
            visit,
            "slack.html",
            title="Slack",
            section="slack",
            regions={"messages": "regions/slack_messages.html", "modal": "regions/slack_modal.html"},
            channels=listed,
            channel=shown,
            channel_name=emu.channels.get(shown, shown),
            people=crowd,
            user=user,
            messages=timeline(shown, user),
            names=names(),
            modal=views[-1] if views else None,
            modal_errors=errors_of.get(views[-1]["id"], {}) if views else {},
        )

    errors_of: dict[str, dict[str, str]] = {}  # a modal's field errors, as the app answered its submission

    async def sent_to_slack_events(visit: Visit, what: str, body: str, headers: dict[str, str]) -> Any:
        answer = await console.deliver("/slack/events", content=body, headers=headers)
        if answer.status_code != 200:
            console.flash(visit, f"{what}: /slack/events answered {answer.status_code} {answer.text[:200]}")
            return None
        try:
            return answer.json() if answer.content else {}
        except ValueError:
            return {}

    def slack_form(form: dict[str, str]) -> tuple[str, str, People]:
        crowd = people()
        user = form.get("as", "")
        if user not in crowd.ids:
            raise ConsoleRefusal(400, "Pick who you are acting as.")
        channel = form.get("channel", "")
        if channel not in {c for c, _, _ in channels()}:
            raise ConsoleRefusal(400, "No such channel.")
        return user, channel, crowd

    @router.post("/sandbox/slack/press")
    async def press(request: Request) -> Response:
        """A button pressed in "Slack": the signed block_actions request Slack sends, to /slack/events."""
        visit, form = await console.form(request)
        user, channel, crowd = slack_form(form)
        try:
            body, headers = slack().press(channel, form.get("ts", ""), form.get("action_id", ""), user)
        except (KeyError, ValueError):
            raise ConsoleRefusal(404, "That message or button is gone (the card changed): look again.") from None
        label = form.get("label", "a button")[:80]
        answer = await sent_to_slack_events(visit, f"{crowd.names[user]} pressed {label}", body, headers)
        if answer is not None:
            console.flash(visit, f"{crowd.names[user]} pressed {label}; Slack delivered the click to the bot.")
        return console.back(visit, SLACK, channel=channel, **{"as": user})

    @router.post("/sandbox/slack/submit")
    async def submit(request: Request) -> Response:
        """A modal submitted: the signed view_submission request Slack sends, to /slack/events."""
        visit, form = await console.form(request)
        user, channel, crowd = slack_form(form)
        view_id = form.get("view_id", "")
        if view_id not in {v["id"] for v in slack().open_views(user)}:
            raise ConsoleRefusal(404, "That form is closed.")
        values: dict[str, dict[str, str]] = {}
        for name, value in form.items():
            if name.startswith("f:") and name.count(":") == 2:
                _, block_id, action_id = name.split(":")
                if value != "":
                    values.setdefault(block_id, {})[action_id] = value
        body, headers = slack().submit_view(user, values, view_id)
        answer = await sent_to_slack_events(visit, f"{crowd.names[user]} submitted the form", body, headers)
        if isinstance(answer, dict) and answer.get("response_action") == "errors":
            errors_of[view_id] = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
        elif answer is not None:
            errors_of.pop(view_id, None)
            slack().close_view(view_id)
            console.flash(visit, f"{crowd.names[user]} submitted the form; Slack delivered it to the bot.")
        return console.back(visit, SLACK, channel=channel, **{"as": user})

    @router.post("/sandbox/slack/cancel")
    async def cancel(request: Request) -> Response:
        visit, form = await console.form(request)
        user, channel, _ = slack_form(form)
        slack().close_view(form.get("view_id", ""))
        return console.back(visit, SLACK, channel=channel, **{"as": user})

    @router.post("/sandbox/slack/command")
    async def command(request: Request) -> Response:
        """``/triage ...`` typed in a channel: Slack's signed command request; its answer shown to the typist."""
        visit, form = await console.form(request)
        user, channel, crowd = slack_form(form)
        text = " ".join(form.get("text", "").split())[:SLASH_LIMIT]
        body, headers = slack().slash_command(user, text, channel)
        answer = await sent_to_slack_events(visit, f"/triage {text}", body, headers)
        if isinstance(answer, dict):
            slack().respond(channel, user, answer)
            console.flash(visit, f"{crowd.names[user]} ran /triage {text}")
        return console.back(visit, SLACK, channel=channel, **{"as": user})

    # ---- Jira ------------------------------------------------------------------------------------------------
    def jira() -> Any:
        if emulators.jira is None:
            raise ConsoleRefusal(404, "Jira is real here: there is no sandbox Jira to show.")
        return emulators.jira

    def jira_people() -> list[Any]:
        emu = jira()
        return [u for u in emu.users if u.account_id != emu.users[0].account_id]  # the bot's own account: not you

    @router.get("/sandbox/jira")
    async def jira_list(request: Request) -> Response:
        visit = console.visit(request)
        issues = list(reversed(jira().issues()))
        return console.page(
            visit, "jira_list.html", title="Jira", section="jira", regions={"issues": "regions/jira_issues.html"},
            issues=issues,
        )  # fmt: skip

    @router.get("/sandbox/jira/browse/{key}")
    async def jira_issue(request: Request, key: str) -> Response:
        visit = console.visit(request)
        emu = jira()
        issue = emu.issue(key)
        if issue is None:
            raise ConsoleRefusal(404, f"There is no issue {key}.")
        project = emu.projects[issue["fields"]["project"]["key"]]
        status = issue["fields"]["status"]["name"]
        moves = [t for t in project.workflow.transitions if t.to != status]
        # Cloud mentions name the account id, Data Center's the username.
        users = {u.account_id: u.display_name for u in emu.users} | {u.name: u.display_name for u in emu.users}
        return console.page(
            visit,
            "jira_issue.html",
            title=issue["key"],
            section="jira",
            regions={"issue": "regions/jira_issue.html"},
            issue=issue,
            moves=moves,
            people=jira_people(),
            users=users,
            acting=request.query_params.get("as", ""),
        )

    def jira_form(form: dict[str, str], key: str) -> Any:
        actor = next((u for u in jira_people() if u.account_id == form.get("as")), None)
        if actor is None:
            raise ConsoleRefusal(400, "Pick who you are in Jira.")
        if jira().issue(key) is None:
            raise ConsoleRefusal(404, f"There is no issue {key}.")
        return actor

    async def in_jira(visit: Visit, key: str, actor: Any, what: str, change: Any) -> Response:
        from bot.sandbox.jira_emulator import JiraError

        try:
            await console.blocking(change)
        except (JiraError, ValueError) as exc:
            console.flash(visit, f"Jira refused: {exc}")
        else:
            console.flash(visit, f"{actor.display_name} {what} in Jira; Jira sends its webhook to the bot.")
        return console.back(visit, f"/console/sandbox/jira/browse/{key}", **{"as": actor.account_id})

    @router.post("/sandbox/jira/browse/{key}/move")
    async def jira_move(request: Request, key: str) -> Response:
        visit, form = await console.form(request)
        actor, name = jira_form(form, key), form.get("transition", "")
        return await in_jira(
            visit, key, actor, f"moved {key} ({name})", lambda: jira().transition(key, name, actor.account_id)
        )

    @router.post("/sandbox/jira/browse/{key}/assign")
    async def jira_assign(request: Request, key: str) -> Response:
        visit, form = await console.form(request)
        actor = jira_form(form, key)
        target = form.get("assignee") or None
        if target is not None and target not in {u.account_id for u in jira().users}:
            raise ConsoleRefusal(400, "No such Jira user.")
        return await in_jira(visit, key, actor, f"assigned {key}", lambda: jira().assign(key, target, actor.account_id))

    @router.post("/sandbox/jira/browse/{key}/comment")
    async def jira_comment(request: Request, key: str) -> Response:
        visit, form = await console.form(request)
        actor, text = jira_form(form, key), form.get("body", "").strip()
        if not text:
            raise ConsoleRefusal(400, "Write the comment first.")
        return await in_jira(
            visit, key, actor, f"commented on {key}", lambda: jira().add_comment(key, text[:32_000], actor.account_id)
        )

    @router.get("/sandbox/jira/attachment/{attachment_id}")
    async def jira_attachment(request: Request, attachment_id: str) -> Response:
        """A file on an issue, always as a download (a customer's file is never a page of this site)."""
        visit = console.visit(request)
        found = jira().attachment(attachment_id)
        if found is None:
            raise ConsoleRefusal(404, "No such attachment.")
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in found.filename)[:100] or "attachment"
        headers = {"Content-Disposition": f'attachment; filename="{safe}"', "Content-Security-Policy": "sandbox"}
        return console.finish(visit, Response(found.data, media_type="application/octet-stream", headers=headers))

    # ---- Inbox -----------------------------------------------------------------------------------------------
    def mail() -> Any:
        if emulators.mail is None:
            raise ConsoleRefusal(404, "E-mail goes to a real server here: there is no sandbox inbox.")
        return emulators.mail

    @router.get("/sandbox/inbox")
    async def inbox(request: Request, n: int | None = None) -> Response:
        visit = console.visit(request)
        messages = mail().messages()
        chosen = n if n is not None and 0 <= n < len(messages) else (len(messages) - 1 if messages else None)
        shown = messages[chosen] if chosen is not None else None
        headers = shown["raw"].split("\r\n\r\n", 1)[0].split("\n\n", 1)[0] if shown else ""
        return console.page(
            visit,
            "inbox.html",
            title="Inbox",
            section="inbox",
            regions={"list": "regions/inbox_list.html"},
            messages=list(enumerate(messages)),
            chosen=chosen,
            shown=shown,
            headers=headers,
        )

    @router.get("/sandbox/inbox/{n}/html")
    async def inbox_html(request: Request, n: int) -> Response:
        """One e-mail's HTML part, for the inbox's sandboxed frame: no script, nothing fetched, no forms."""
        visit = console.visit(request)
        messages = mail().messages()
        if not 0 <= n < len(messages) or not messages[n]["html"]:
            raise ConsoleRefusal(404, "No such e-mail, or it has no HTML part.")
        response = HTMLResponse(messages[n]["html"])
        console.finish(visit, response)
        response.headers["Content-Security-Policy"] = (
            "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
        )
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    # ---- Send ------------------------------------------------------------------------------------------------
    def customers() -> list[Any]:
        from bot.sandbox.identity_emulator import DEFAULT_SESSIONS

        if emulators.identity is None:
            return []
        return [s for s in DEFAULT_SESSIONS if "reports:write" in s.scope.split() and s.exp is None]

    def statuses(customer: Any) -> list[dict[str, Any]]:
        with Session(console.runtime.engine) as session:
            return [
                {"ref": t.report_ref, "subject": t.title, "created_at": t.created_at}
                for t in operations.reports_of(session, customer.sub)
            ]

    @router.get("/sandbox/send")
    async def send_page(request: Request) -> Response:
        visit = console.visit(request)
        crowd = customers()
        customer = next((c for c in crowd if c.session_id == request.query_params.get("customer")), None)
        customer = customer or (crowd[0] if crowd else None)
        reports: list[dict[str, Any]] = []
        if customer is not None:
            reports = await console.blocking(statuses, customer)
            for report in reports:  # what the customer's app shows: asked of /reports as the app asks
                answer = await console.get(f"/reports/{report['ref']}", headers={"X-Session-Id": customer.session_id})
                report["status"] = answer.json().get("status_text", "?") if answer.status_code == 200 else "?"
        return console.page(
            visit,
            "send.html",
            title="Send",
            section="send",
            regions={"reports": "regions/send_reports.html"},
            sources=ALERT_SOURCES,
            teams=list(policy.teams),
            customers=crowd,
            customer=customer,
            reports=reports,
            categories=_categories(console),
        )

    @router.post("/sandbox/send/alert")
    async def send_alert(request: Request) -> Response:
        """A sample alert, POSTed to /alerts/<source> with the webhook token, as its sender would."""
        visit, form = await console.form(request)
        source = form.get("source", "")
        if source not in ALERT_SOURCES:
            raise ConsoleRefusal(400, "Pick a sender.")
        status = "resolved" if form.get("status") == "resolved" else "firing"
        name = "".join(c for c in form.get("name", "") if c.isalnum())[:60] or "HighErrorRate"
        summary = form.get("summary", "").strip()[:500] or f"{name} in production"
        labels = {"service": form["service"]} if form.get("service") else {}
        severity = form.get("severity") if form.get("severity") in ("critical", "warning", "info") else "critical"
        labels |= {"severity": str(severity), "env": "staging" if form.get("env") == "staging" else "production"}
        payload = _sample(source, name, status, labels, summary)
        token = console.settings.effective_webhook_token()
        answer = await console.deliver(
            f"/alerts/{source}", json_body=payload, headers={"Authorization": f"Bearer {token}"}
        )
        said = answer.text[:300]
        console.flash(visit, f"{ALERT_SOURCES[source]} ({status}) → /alerts/{source}: {answer.status_code} {said}")
        return console.back(visit, "/console/sandbox/send")

    @router.post("/sandbox/send/report")
    async def send_report(request: Request) -> Response:
        """A customer's report, POSTed to /reports with the customer's session, as their app would."""
        visit, form = await console.form(request)
        customer = next((c for c in customers() if c.session_id == form.get("customer")), None)
        if customer is None:
            raise ConsoleRefusal(400, "Pick a customer.")
        report = {
            "subject": form.get("subject", "").strip()[:200] or "Something went wrong",
            "description": form.get("description", "").strip()[:5000] or "(no description)",
            "category": form.get("category") or "other",
            "app": {"name": "Shop", "version": "4.2.0", "platform": form.get("platform") or "ios"},
            "metadata": {"device": "sandbox console"},
        }
        headers = {"X-Session-Id": customer.session_id, "Idempotency-Key": secrets.token_hex(16)}
        answer = await console.deliver("/reports", json_body=report, headers=headers)
        if answer.status_code == 201:
            body = answer.json()
            console.flash(visit, f"Report {body['id']} sent as {customer.sub}: “{body['status_text']}”")
        else:
            console.flash(visit, f"/reports answered {answer.status_code}: {answer.text[:300]}")
        return console.back(visit, "/console/sandbox/send", customer=customer.session_id)


def _categories(console: Console) -> list[str]:
    found = ["billing", "login", "crash", "other"]
    reports = console.runtime.policy.reports
    for route in reports.routes if reports else ():
        value = route.match.get("category")
        for item in value if isinstance(value, list) else [value] if value else []:
            if item not in found:
                found.insert(0, str(item))
    return found


def _sample(source: str, name: str, status: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
    group = f"{name}-{int(time.time() // 3600)}"  # a new problem each hour; the same one to resolve it
    if source == "grafana":
        return samples.grafana_payload(name, status, labels | {"alertname": name}, {"summary": summary})
    if source == "events":
        details = {k: v for k, v in labels.items() if k != "severity"}
        payload = samples.events_payload(name, status, labels["severity"], details)
        payload["payload"]["summary"] = summary
        return payload
    payload = samples.alertmanager_payload(group, 1, status, labels | {"alertname": name}, {"summary": summary})
    payload["groupKey"] = json.dumps({"alertname": name, "env": labels["env"]}, sort_keys=True)
    return payload
