"""adapters/clouds."""
