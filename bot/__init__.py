"""Act: the outside world and the runtime (settings, database, job queue, Jira, Slack, CLI)."""
