# syntax=docker/dockerfile:1
# triage-bot: a small non-root image. Build: docker build -t triage-bot .
# Run:   docker run -p 8080:8080 -e TRIAGE_HOST=0.0.0.0 triage-bot             (sandbox mode)
# Prod:  set TRIAGE_DATABASE_URL, TRIAGE_JIRA_*, TRIAGE_SLACK_*, TRIAGE_WEBHOOK_TOKEN (and for customer
#        reports TRIAGE_SESSION_INTROSPECTION_*, TRIAGE_SMTP_URL, TRIAGE_MAIL_FROM); run
#        `triage-bot db upgrade` once per release (e.g. a Kubernetes Job) before the replicas.
#        deploy/ has a Compose file and Kubernetes manifests that do all of this.
#
# Base image policy: the Python minor version and the Debian release are pinned (3.11, bookworm) and the patch
# releases float, so a rebuild takes the security fixes; rebuild at least monthly. For a build that is the same byte
# for byte, pin the digest: docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
# The Python packages are the tested ones: requirements/run.txt, installed with its hashes checked.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/triage-bot
COPY requirements/run.txt ./requirements/run.txt
RUN /opt/triage-bot/bin/pip install --no-compile --require-hashes -r requirements/run.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY webhooks ./webhooks
COPY workflows ./workflows
RUN /opt/triage-bot/bin/pip install --no-compile --no-deps . \
 && find /opt/triage-bot -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
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
