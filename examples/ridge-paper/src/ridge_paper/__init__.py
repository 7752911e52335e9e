"""Example distribution: a ridge-regression experiment registered with repro by an entry point."""
