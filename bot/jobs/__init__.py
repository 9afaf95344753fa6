"""The durable job queue and its workers: claiming, retrying, leases, housekeeping, job kinds and lanes."""
