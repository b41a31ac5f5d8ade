"""Local fakes of external providers' APIs, each enforcing the provider's documented contract."""
