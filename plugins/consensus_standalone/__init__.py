"""The single-member consensus: txns are made, logged with group commit, and applied locally."""
