"""Unit tests of the workers."""
