"""Read models rebuilt from the log (SPEC §3–§7)."""
