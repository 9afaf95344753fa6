"""One client per outside system (Jira, Slack, the identity service); none touches the database."""
