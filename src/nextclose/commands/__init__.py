"""Commands that are not pipeline stages: ``apply-best`` and ``champion``."""
