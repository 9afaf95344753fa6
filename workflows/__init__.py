"""Decide: the domain of triage-bot, pure functions over plain data.

Nothing in this package talks to a database, Jira or Slack; ``webhooks`` and ``bot`` use it, never the reverse.
"""
