"""Sandbox mode: in-process emulators of external services."""
