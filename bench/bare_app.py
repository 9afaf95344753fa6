"""The baseline: a bare FastAPI endpoint that only parses the Alertmanager payload with the product's own
pydantic model and answers 202. Served by ``python -m bench.bare_app --port N`` with the same uvicorn
settings as ``triage-bot serve`` (uvloop/httptools when installed, no access log)."""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from workflows.alerts import AlertmanagerWebhook

app = FastAPI(title="bare baseline")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/alerts/alertmanager", status_code=202)
async def alertmanager(request: Request) -> JSONResponse:
    raw = await request.body()
    message = AlertmanagerWebhook.model_validate(json.loads(raw))
    return JSONResponse({"status": "accepted", "alerts": len(message.alerts)}, status_code=202)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
