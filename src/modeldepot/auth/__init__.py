"""API keys with roles, and the audit log of admin actions (issue 10).

Keys are optional, as the seed says: with ``auth_required`` off (the default on a
loopback bind) every client may do everything; with it on, every request needs
``Authorization: Bearer <key>`` and the key's role decides what it may do
(:class:`~modeldepot.auth.keys.Role`). The HTTP side is ``modeldepot.api.access``.
"""
