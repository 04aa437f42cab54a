"""The log, ingest and the runtime: where touchpoints come in and are kept."""
