"""Summary care record (Kjernejournal) look-ups."""
