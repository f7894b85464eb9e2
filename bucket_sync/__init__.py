"""bucket-sync: keep local folders in sync with Bentley iTwin Platform storage."""

__version__ = "0.1.0"
