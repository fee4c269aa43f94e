"""What binderlite counts and records: Prometheus metrics and the launch event log."""
