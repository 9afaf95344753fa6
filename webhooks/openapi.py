"""The request bodies and credentials of every public endpoint in the OpenAPI document (``/openapi.json``,
``/docs``).

The handlers read their bodies as raw bytes (signatures are over the bytes, and sizes are checked before anything
is parsed), so FastAPI cannot see what they take. Each route declares it here instead (``openapi_extra``), with
the schema generated from the pydantic model that reads the body, so the document and the parser cannot drift
apart; ``install`` adds those schemas and the security schemes to the document's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

Json = dict[str, Any]
REF = "#/components/schemas/{model}"

BEARER = "webhookToken"  # the security scheme of TRIAGE_WEBHOOK_TOKEN
SECURITY_SCHEMES: dict[str, Json] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "TRIAGE_WEBHOOK_TOKEN (or, for senders that only do basic auth, any user and the token as "
        "the password). /metrics takes TRIAGE_METRICS_TOKEN when that is set.",
    },
    "jiraSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature",
        "description": "sha256=<hex HMAC-SHA256 of the raw body keyed with TRIAGE_JIRA_WEBHOOK_SECRET>, when it is set",
    },
    "jiraUrlToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "TRIAGE_WEBHOOK_TOKEN in the webhook's URL, when no TRIAGE_JIRA_WEBHOOK_SECRET is set",
    },
    "slackSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Slack-Signature",
        "description": "v0=<hex HMAC-SHA256 of 'v0:' + X-Slack-Request-Timestamp + ':' + the raw body, keyed with "
        "TRIAGE_SLACK_SIGNING_SECRET>; the timestamp within 5 minutes",
    },
    "customerSession": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Session-Id",
        "description": "the customer's session id, checked with the apps' identity service (RFC 7662)",
    },
}

_MODELS: dict[str, type[BaseModel]] = {}


def _ref(model: type[BaseModel]) -> Json:
    _MODELS[model.__name__] = model
    return {"$ref": REF.format(model=model.__name__)}


def json_body(model: type[BaseModel], description: str, *security: str) -> Json:
    """``openapi_extra`` for a route whose JSON body ``model`` reads, taking any one of ``security``."""
    extra: Json = {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": _ref(model)}},
        }
    }
    if security:
        extra["security"] = [{name: []} for name in security]
    return extra


def form_body(models: tuple[type[BaseModel], ...], description: str, *security: str) -> Json:
    """``openapi_extra`` for a route that takes an ``application/x-www-form-urlencoded`` body of one of ``models``."""
    schema = _ref(models[0]) if len(models) == 1 else {"anyOf": [_ref(m) for m in models]}
    extra: Json = {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }
    if security:
        extra["security"] = [{name: []} for name in security]
    return extra


def secured(*security: str) -> Json:
    """``openapi_extra`` for a route without a body that takes any one of ``security``."""
    return {"security": [{name: []} for name in security]}


def install(app: FastAPI) -> None:
    """Add the declared bodies' schemas and the security schemes to the app's OpenAPI document."""
    plain = app.openapi

    def document() -> Json:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = plain()
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name, model in sorted(_MODELS.items()):
            generated = model.model_json_schema(ref_template=REF, mode="validation")
            schemas.update(generated.pop("$defs", {}))
            schemas[name] = generated
        components["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = spec
        return spec

    app.openapi = document  # type: ignore[method-assign]


class SlackInteraction(BaseModel):
    """What Slack posts for a button press, a form submission or a shortcut (interactivity)."""

    model_config = ConfigDict(title="SlackInteraction")

    payload: str = Field(description="the interaction as JSON (block_actions, view_submission, ...)")


class SlackSlashCommand(BaseModel):
    """What Slack posts when someone runs ``/triage``."""

    model_config = ConfigDict(title="SlackSlashCommand", extra="allow")

    command: str = Field(examples=["/triage"])
    text: str = ""
    user_id: str
    channel_id: str = ""
    team_id: str = ""
    trigger_id: str = ""
    response_url: str = ""
