"""Shared episode-level metrics. Each module implements one matcher and registers it by entry point."""
