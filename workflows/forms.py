"""The forms behind the buttons that need input, as data: which action asks for what, and the modal for it.

A form's submission is decided like any click (``workflows.transitions.decide``), with what was entered.
The view's ``callback_id`` is ``triage.<action>`` and its ``private_metadata`` carries the ticket, the card
version the button was pressed on, and the channel (for the refusal, if any).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from workflows.escaping import truncate
from workflows.transitions import Action

FORM_PREFIX = "triage."
TEXT_LIMIT = 2000  # what a note may hold: it goes to a Jira comment and a Slack thread reply
OPTIONS_LIMIT = 100  # Slack's limit for a static_select

Kind = Literal["team", "member", "text"]


@dataclass(frozen=True)
class Form:
    action: Action
    title: str  # 24 characters at most (Slack's limit for a modal title)
    submit: str
    field: str  # the block_id and action_id of its one input
    label: str
    kind: Kind
    placeholder: str = ""

    @property
    def callback_id(self) -> str:
        return f"{FORM_PREFIX}{self.action.value}"


INPUT_KEY: dict[Kind, str] = {"team": "team", "member": "member", "text": "text"}  # where a click carries it

FORMS: dict[Action, Form] = {
    Action.ASSIGN_TEAM: Form(Action.ASSIGN_TEAM, "Assign team", "Assign", "team", "Team", "team"),
    Action.ASSIGN_MEMBER: Form(Action.ASSIGN_MEMBER, "Assign member", "Assign", "member", "Member", "member"),
    Action.RESOLVE: Form(
        Action.RESOLVE, "Resolve", "Resolve", "done", "What was done", "text", "The cause, and what fixed it"
    ),
    Action.CLOSE: Form(
        Action.CLOSE,
        "Close",
        "Close",
        "message",
        "Message for the customer",
        "text",
        "They receive this by e-mail, with the ticket's reference",
    ),
}
_BY_CALLBACK = {form.callback_id: form for form in FORMS.values()}


def form_for(action: Action, *, has_customer: bool) -> Form | None:
    """The form a button opens, if any. Close asks for a message only when there is a customer to tell."""
    if action is Action.CLOSE and not has_customer:
        return None
    return FORMS.get(action)


def form_of_callback(callback_id: str) -> Form | None:
    return _BY_CALLBACK.get(callback_id)


class FormMetadata(BaseModel):
    """A form's ``private_metadata``: the ticket, the card version its button was pressed on, and the channel
    (for the refusal, if any). Read with ``model_validate_json()``."""

    model_config = ConfigDict(frozen=True)

    ticket: int
    version: int
    channel: str

    def private_metadata(self) -> str:
        """``{"ticket": 12, "version": 3, "channel": "C1"}``: json.dumps' spacing, byte for byte what forms have
        always carried (``model_dump_json()`` would leave the spaces out)."""
        return json.dumps(self.model_dump())


def select_options(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """(value, shown text) pairs as a static_select's options, within Slack's limits (100 options, 75 characters)."""
    return [
        {"text": {"type": "plain_text", "text": truncate(text, 75)}, "value": value}
        for value, text in pairs[:OPTIONS_LIMIT]
    ]


def modal(form: Form, *, ticket: int, version: int, channel: str, choices: list[tuple[str, str]]) -> dict[str, Any]:
    """The modal for ``form``; ``choices`` are (value, shown text) for a select (teams or members)."""
    if form.kind == "text":
        element: dict[str, Any] = {
            "type": "plain_text_input",
            "action_id": form.field,
            "multiline": True,
            "max_length": TEXT_LIMIT,
        }
        if form.placeholder:
            element["placeholder"] = {"type": "plain_text", "text": form.placeholder}
    else:
        element = {"type": "static_select", "action_id": form.field, "options": select_options(choices)}
    return {
        "type": "modal",
        "callback_id": form.callback_id,
        "private_metadata": FormMetadata(ticket=ticket, version=version, channel=channel).private_metadata(),
        "title": {"type": "plain_text", "text": form.title},
        "submit": {"type": "plain_text", "text": form.submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": form.field,
                "label": {"type": "plain_text", "text": form.label},
                "element": element,
            }
        ],
    }


class FormError(ValueError):
    """What to show under the form's field: the submission is refused and the modal stays open."""


def entered(form: Form, state_values: dict[str, Any]) -> str:
    """What was entered in ``form`` (Slack's ``view.state.values``), checked."""
    try:
        field = state_values[form.field][form.field]
        value = field["value"] if form.kind == "text" else (field.get("selected_option") or {}).get("value")
    except (KeyError, TypeError, AttributeError):
        value = None
    if not isinstance(value, str) or not value.strip():
        raise FormError(f"{form.label} is needed.")
    if len(value) > TEXT_LIMIT:
        raise FormError(f"At most {TEXT_LIMIT} characters.")
    return value.strip()
