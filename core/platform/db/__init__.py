"""Storage of data: SQLAlchemy 2 async models, the engine, migrations."""
