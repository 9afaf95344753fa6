"""In: the HTTP surface. Authenticate, validate, persist the event and its jobs in one transaction, answer."""
