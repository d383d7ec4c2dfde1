"""The PostgreSQL backend (asyncpg): schema and migrations, error mapping, the group-commit
batch. Needs the optional extra ``power_store[postgres]``."""
