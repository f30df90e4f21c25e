"""Password hashing, token digests, the master key ring and the secret box."""
