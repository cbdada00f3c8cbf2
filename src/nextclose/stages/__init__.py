"""The pipeline's stage programs: each reads params and inputs, calls the core, writes outputs."""
