"""What people see, as pure functions: view models, figure builders with one theme, report renderers.

Everything here takes frames, metadata or explanation objects and returns figures, tables or
bytes; Dash components and callbacks live in ``pages/``, and nothing here imports them.
"""
