"""adapters/ansible."""
