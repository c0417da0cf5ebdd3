"""privrisk."""
