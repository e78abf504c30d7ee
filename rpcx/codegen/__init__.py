"""Model → Python source."""
