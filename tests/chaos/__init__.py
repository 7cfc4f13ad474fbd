"""Proof tests: the whole system under chaos converges on the database's truth in every outside system."""
