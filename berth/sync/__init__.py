"""Keeping each worker's in-memory provider state in step with the database."""
