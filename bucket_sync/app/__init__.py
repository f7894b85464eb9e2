"""Orchestration: turns parsed options into a resolved container, a plan and a run. Below the CLI,
above the sync core and the platform client."""
