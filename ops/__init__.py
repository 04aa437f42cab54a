"""The ops surface: the `engage` CLI, the HTTP API, audit tools and benchmarks."""
