"""Pure functions over image bytes and Pillow images: validation, size math, encoding."""
