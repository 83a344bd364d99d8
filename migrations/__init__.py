"""Darkroom's Alembic migrations (env.py, versions/), a package so the wheel ships them and an
installed `darkroom migrate` finds them."""
