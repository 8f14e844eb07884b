"""The service boundary: who may sign in (``users``), what each role may reach (``access``, the
role matrix), the record of what they did (``audit``), the wiring into the app's Flask server
(``web``: the guard, /login, /logout, /health; ``html``: those plain pages), the JSON API
(``api``, its contract ``openapi``) and the error shape both answer in (``responses``).
Customer data leaves the building only through here.
"""
