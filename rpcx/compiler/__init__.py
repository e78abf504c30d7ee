"""The IDL front end: text in, a checked model or diagnostics out. It does no file I/O:
the caller passes a ``read`` function."""
