"""Built-in fsar-bench methods, installed as `fsar_methods`; each registers through an entry point."""
