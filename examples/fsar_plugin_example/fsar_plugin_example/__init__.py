"""An example third-party fsar-bench method plugin (see README.md)."""

from fsar_plugin_example.method import ExampleMotion

__all__ = ["ExampleMotion"]
