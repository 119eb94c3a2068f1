"""The store: table models, the engine and the bulk queries. Everything goes through SQLAlchemy."""
