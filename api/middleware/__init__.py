"""Cross-cutting request handling, in the order the app installs it."""
