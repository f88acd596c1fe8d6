"""Infrastructure shared by every layer: logging, cache and Flask extensions."""
