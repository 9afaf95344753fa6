# syntax=docker/dockerfile:1
# triage-bot: a small non-root image. Build: docker build -t triage-bot .
# Run:   docker run -p 8080:8080 -e TRIAGE_HOST=0.0.0.0 triage-bot             (sandbox mode)
# Prod:  set TRIAGE_DATABASE_URL, TRIAGE_JIRA_*, TRIAGE_SLACK_*, TRIAGE_WEBHOOK_TOKEN (and for customer
#        reports TRIAGE_SESSION_INTROSPECTION_*, TRIAGE_SMTP_URL, TRIAGE_MAIL_FROM); run
#        `triage-bot db upgrade` once per release (e.g. a Kubernetes Job) before the replicas.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/triage-bot
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY webhooks ./webhooks
COPY workflows ./workflows
RUN /opt/triage-bot/bin/pip install --no-compile . \
 && find /opt/triage-bot -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm
ENV PATH=/opt/triage-bot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRIAGE_HOST=0.0.0.0 \
    TRIAGE_PORT=8080 \
    TRIAGE_DATABASE_URL=sqlite:////var/lib/triage-bot/triage-bot.db
RUN groupadd --system --gid 10001 triage \
 && useradd --system --uid 10001 --gid triage --home-dir /var/lib/triage-bot --create-home triage
COPY --from=build /opt/triage-bot /opt/triage-bot
USER 10001:10001
WORKDIR /var/lib/triage-bot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRIAGE_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["triage-bot"]
CMD ["serve"]
