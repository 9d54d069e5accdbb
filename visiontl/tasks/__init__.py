"""Task adapters: what the core needs to know about a kind of label."""
