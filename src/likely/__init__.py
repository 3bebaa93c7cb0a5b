"""likely: open customer AI."""
