"""core/elasticity."""
