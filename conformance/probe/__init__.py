"""``vmbspec probe``: which reading of the documentation does a target follow?

The spec names fourteen readings (``READ-A1`` ... ``READ-A14``); a profile picks one option of
each. This package runs, on a target, the discriminating calls and short step sequences the
spec found for itself (``calls.json``, written by ``python -m vmbspec.spec.discriminate``; the
lifecycle and status sequences come from ``sequences.py``) and reports, per reading with more
than one option, the options the target's answers are consistent with:

* :mod:`.load` reads ``calls.json`` (bounded, every step checked against the step schema);
* :mod:`.infer` runs each probe on a fresh target under the driver of each candidate profile
  and infers the options, jointly for the readings that interact (A2 with A3, A1 with A5 and
  with A9), then confirms the profile found by a short check;
* :mod:`.report` says it as text, JSON and Markdown.
"""
