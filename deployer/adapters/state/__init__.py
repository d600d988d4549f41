"""adapters/state."""
