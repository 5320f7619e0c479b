"""Applications served identically by every server under test."""
