"""The fleet's relational store: schema, engine and migrations."""
