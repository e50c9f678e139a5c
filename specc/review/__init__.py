"""``specc review``: a person reads a dataset's pairs one at a time in a local page and records a
verdict on each (docs/review.md).

- :mod:`specc.review.data` reads the dataset (through the hardened readers) into the records the
  page shows, with the verdicts already made;
- :mod:`specc.review.server` serves the page and takes verdicts on 127.0.0.1, behind a random token;
- :mod:`specc.review.export` writes the accepted records only, as a dataset of their own.

The verdicts themselves are data beside the dataset (``reviews.jsonl``), read and written by
:mod:`specc.emit.reviews`, which the dataset writer also reads.
"""
