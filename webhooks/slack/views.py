"""Form submissions (modals opened by a card's buttons): checked, stored with the click's job before the ack,
and decided by a worker like any click."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool
from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.runtime import Runtime
from webhooks.slack.actions import store_click
from workflows.forms import FORMS, INPUT_KEY, FormError, FormMetadata, entered, form_of_callback


def register(app: AsyncApp, runtime: Runtime, wake: Callable[[], None]) -> None:
    async def store(click: dict[str, Any], delivery: str) -> None:
        await run_in_threadpool(store_click, runtime, click, delivery)

    @app.view(re.compile("^(" + "|".join(re.escape(form.callback_id) for form in FORMS.values()) + ")$"))
    async def on_form(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        form = form_of_callback(str(view.get("callback_id")))
        if form is None:
            await ack()  # not one of ours: close it
            return
        try:
            value = entered(form, (view.get("state") or {}).get("values") or {})
            if form.kind == "team" and value not in runtime.policy.teams:
                raise FormError("That team is not in the policy.")
            meta = FormMetadata.model_validate_json(view.get("private_metadata") or "")
            click = {
                "action": form.action.value,
                "ticket": meta.ticket,
                "version": meta.version,
                "user": str(body["user"]["id"]),
                "channel": meta.channel,
                INPUT_KEY[form.kind]: value,
            }
        except FormError as problem:
            await ack(response_action="errors", errors={form.field: str(problem)})
            return
        except (KeyError, TypeError, ValueError):
            await ack(response_action="errors", errors={form.field: "This form is out of date."})
            return
        # The view id is the same if Slack retries the submission: the second one is a duplicate.
        await store(click, f"view:{view.get('id')}")
        await ack()
        wake()
