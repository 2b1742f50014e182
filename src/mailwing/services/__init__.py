"""Services between protocol sessions and storage: authentication, delivery, policy."""
