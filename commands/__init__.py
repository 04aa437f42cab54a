"""The write side: touchpoint schemas, parsing and the decisions of SPEC §2 and §5."""
