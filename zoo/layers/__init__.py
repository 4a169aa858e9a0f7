"""Primitives the zoo is built around, each tested alone against a naive reference."""
