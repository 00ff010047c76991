"""Trainers. Each receives the networks it trains and writes a model directory that its
ecosystem loads without synthmed (see docs/ldm.md)."""
