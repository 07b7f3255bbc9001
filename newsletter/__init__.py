"""newsletter: write a curated newsletter as YAML, check it, build it, send it."""

__version__ = "0.1.0"
