"""Alembic migrations of the Turing-test store (run by `turing_test.storage.upgrade`)."""
