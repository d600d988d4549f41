"""adapters/oscar: a thin OSCAR REST client."""
