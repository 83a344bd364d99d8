"""Business logic between the routers and the tables; only the caller's boundary commits."""
