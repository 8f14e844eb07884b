"""Dash pages. Thin: layout plus callbacks that call analytics/, models/ and explain/."""
