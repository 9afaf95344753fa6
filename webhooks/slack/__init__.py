"""Slack in: the Bolt app behind POST /slack/events and Socket Mode, with its listeners."""
