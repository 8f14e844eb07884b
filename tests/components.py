"""Reading Dash component trees in tests: callbacks return components, and a test asserts on the
one with a given id or on the text a person would read."""

from __future__ import annotations

from typing import Any

__all__ = ["find", "text"]


def find(component: Any, component_id: Any) -> Any:
    """The first component in the tree with ``id == component_id`` (depth first), or None."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = find(child, component_id)
            if found is not None:
                return found
    return None


def text(component: Any, sep: str = " ") -> str:
    """All the text under ``component``, children joined by ``sep``."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return sep.join(text(child, sep) for child in component)
    return text(getattr(component, "children", None), sep)
