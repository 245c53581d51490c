"""Admin: topups."""
