"""Demo and benchmark data: ``python -m data.generate`` builds a seeded demo fleet."""
