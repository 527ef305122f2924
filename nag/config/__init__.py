"""Configuration plumbing that imports neither torch nor Lightning: composition outside ``@hydra.main``, the
types and ranges of the config keys (checked before torch loads), the user-facing error types, the console."""
