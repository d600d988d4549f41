"""adapters/im."""
