"""cakupan's orchestration layer: Dagster Definitions, jobs, resources, landing-zone I/O and CLI."""
