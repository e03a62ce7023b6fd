"""Use cases: plain functions with keyword-only arguments that views, tasks and commands call."""
