"""The ``bareprop`` command line: one small module per command."""
