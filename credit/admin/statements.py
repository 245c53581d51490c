"""Admin: statements."""
