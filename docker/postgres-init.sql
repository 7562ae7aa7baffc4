-- Run once by the postgres image when its volume is new (/docker-entrypoint-initdb.d), as the
-- POSTGRES_USER, after it created POSTGRES_DB (optuna: the sweep studies). MLflow gets its own
-- database because Optuna and MLflow both keep their schema version in a table named
-- alembic_version; in one database each would take the other's migrations for its own.
CREATE DATABASE mlflow;
