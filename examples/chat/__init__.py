"""A causal chat: a reply is never shown before the message it answers."""
