"""Settings modules: ``dev`` (default for manage.py), ``test`` and ``production``.

Every value that differs between machines comes from the environment (see
``.env.example``); ``base`` holds what is common.
"""
