"""Images on local disk with signed URLs."""
