"""The local mirror: schema, migrations and the only code that writes to the database."""
