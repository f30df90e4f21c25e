"""visitmail's benchmark suite: peers send the same messages to the same sink, side by side
in one run, and the report gives each peer's time and its ratio to Nodemailer.

Run it from the repository root with ``python -m bench.run --help`` (or ``visitmail bench``).
"""
