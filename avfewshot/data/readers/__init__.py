"""One reader module per dataset; :mod:`avfewshot.data.annotations` is the public entry point."""
