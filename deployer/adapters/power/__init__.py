"""adapters/power."""
