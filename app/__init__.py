"""Darkroom: an async REST API for AI image work."""
