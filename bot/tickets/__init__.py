"""The handlers that open tickets and carry them to Jira, Slack and the customer."""
