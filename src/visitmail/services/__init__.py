"""Use cases. Each takes its ports as arguments; none imports a framework or driver."""
