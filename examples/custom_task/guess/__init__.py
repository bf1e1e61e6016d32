"""A task of one's own for kondo-bench: guess the paying arm (see ../README.md)."""
